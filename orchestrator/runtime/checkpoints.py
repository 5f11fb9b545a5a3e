"""Checkpoints of runs (spec section 12.6): their ids, what a decision may say, their views.

Pure functions over the rows of :mod:`orchestrator.store.approvals`: the run
scheduler (:mod:`orchestrator.runtime.scheduler`) requests, decides and cancels
checkpoints with them, inside its own changes. Invariants: a checkpoint id is
``<step_id>.<when>.<n>``, derived from the checkpoints the run already has, so
it is the same on every replay and never reused (ORCH-0364); a decision is
checked completely before anything changes (ORCH-0370); the prompt or inputs of
a step's latest ``retry`` decision are what its next attempts use (ORCH-0368).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from orchestrator.errors import ApiError
from orchestrator.runs.inputs import InputError, check_inputs
from orchestrator.runtime.clock import rfc3339
from orchestrator.runtime.run_views import decode_cursor, encode_cursor
from orchestrator.schemas import (
    Approval,
    ApprovalList,
    CheckpointDecision,
    DefinitionDocument,
    TaskError,
)
from orchestrator.store import CheckpointRow, Store
from orchestrator.vocabulary import CheckpointState, CheckpointWhen, Decision, ErrorKind


def request(
    existing: Iterable[CheckpointRow],
    run_id: str,
    step_id: str,
    when: CheckpointWhen,
    decisions: list[Decision],
    output: str | None,
    now_ms: int,
    error: dict[str, Any] | None = None,
) -> CheckpointRow:
    """A new pending checkpoint of the step, numbered after the run's ``existing`` ones."""
    number = 1 + sum(1 for c in existing if c.step_id == step_id and c.when == when)
    return CheckpointRow(
        run_id=run_id,
        checkpoint_id=f"{step_id}.{when}.{number}",
        step_id=step_id,
        when=when,
        number=number,
        state="pending",
        decisions=list(decisions),
        output=output if when == "after" else None,
        requested_ms=now_ms,
        error=error,
    )


def approved_before(checkpoints: Iterable[CheckpointRow], step_id: str) -> bool:
    """Whether the step's ``before`` checkpoint was decided ``continue``: it may start."""
    return any(
        c.step_id == step_id and c.when == "before" and c.decision == "continue"
        for c in checkpoints
    )


def pending(checkpoints: Iterable[CheckpointRow]) -> list[CheckpointRow]:
    return [c for c in checkpoints if c.state == "pending"]


def attempt_overrides(
    checkpoints: Iterable[CheckpointRow], step_id: str
) -> tuple[str | None, dict[str, Any] | None]:
    """``(prompt, inputs)`` of the step's latest ``retry`` decision (ORCH-0368)."""
    retries = [c for c in checkpoints if c.step_id == step_id and c.decision == "retry"]
    if not retries:
        return None, None
    latest = max(retries, key=lambda c: c.number)
    return latest.prompt, latest.inputs


def check_decision(
    row: CheckpointRow,
    body: CheckpointDecision,
    document: DefinitionDocument,
    run_inputs: dict[str, Any],
) -> dict[str, Any] | None:
    """Refuse what the checkpoint does not allow (ORCH-0370); the inputs a retry renders with."""
    if row.state != "pending":
        raise ApiError(
            ErrorKind.CONFLICT,
            f"checkpoint {row.checkpoint_id!r} of run {row.run_id!r} is already {row.state}",
            details={"state": row.state},
        )
    if body.decision not in row.decisions:
        raise ApiError(
            ErrorKind.INVALID_PARAMS,
            f"decision: {body.decision!r} is not one of this checkpoint's decisions "
            f"({', '.join(row.decisions)})",
            details={"path": "decision"},
        )
    if body.decision != "retry" and (body.prompt is not None or body.inputs is not None):
        given = "prompt" if body.prompt is not None else "inputs"
        raise ApiError(
            ErrorKind.INVALID_PARAMS,
            f"{given}: only a 'retry' decision takes a prompt or inputs",
            details={"path": given},
        )
    if body.prompt is not None and body.inputs is not None:
        raise ApiError(
            ErrorKind.INVALID_PARAMS,
            "inputs: give a prompt or inputs, not both",
            details={"path": "inputs"},
        )
    if body.inputs is None:
        return None
    try:
        return check_inputs(document, {**run_inputs, **body.inputs})
    except InputError as exc:
        raise ApiError(ErrorKind.INVALID_PARAMS, str(exc), details={"path": exc.path}) from None


def approval_view(row: CheckpointRow) -> Approval:
    """A checkpoint as ``GET /v1/approvals`` lists it (ORCH-0365)."""
    return Approval(
        checkpoint_id=row.checkpoint_id,
        run_id=row.run_id,
        step_id=row.step_id,
        when=row.when,
        state=row.state,
        decisions=row.decisions,
        requested_at=rfc3339(row.requested_ms),
        decided_at=rfc3339(row.decided_ms),
        decision=row.decision,
        decided_by=row.decided_by,
        output=row.output,
        error=None if row.error is None else TaskError(**row.error),
    )


def approvals(
    store: Store,
    *,
    state: CheckpointState | None,
    run_id: str | None,
    cursor: str | None,
    limit: int,
) -> ApprovalList:
    """Checkpoints in the order they were requested, a page at a time (ORCH-0365): the
    store is the truth, every change of a checkpoint being committed before it is seen."""
    after = None
    if cursor:
        requested_ms, (cursor_run, cursor_checkpoint) = decode_cursor(cursor, keys=2)
        after = (requested_ms, cursor_run, cursor_checkpoint)
    rows = store.list_checkpoints(state=state, run_id=run_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        encode_cursor(last.requested_ms, last.run_id, last.checkpoint_id)
        if more and last is not None
        else None
    )
    return ApprovalList(approvals=[approval_view(r) for r in page], next_cursor=next_cursor)


def refuse_decision(store: Store, run_id: str, checkpoint_id: str) -> NoReturn:
    """A decision on a run that is not live: 404, or 409 for a checkpoint it had (ORCH-0370)."""
    if store.get_run(run_id) is None:
        raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
    row = store.get_checkpoint(run_id, checkpoint_id)
    if row is None:
        raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} has no checkpoint {checkpoint_id!r}")
    raise ApiError(
        ErrorKind.CONFLICT,
        f"checkpoint {checkpoint_id!r} of run {run_id!r} is already {row.state}",
        details={"state": row.state},
    )


def resolved_data(row: CheckpointRow) -> dict[str, Any]:
    """The data of ``checkpoint.resolved`` (section 12.5)."""
    return {
        "checkpoint_id": row.checkpoint_id,
        "step_id": row.step_id,
        "state": row.state,
        "decision": row.decision,
        "decided_by": row.decided_by,
    }


def requested_data(row: CheckpointRow) -> dict[str, Any]:
    """The data of ``checkpoint.requested`` (section 12.5)."""
    return {
        "checkpoint_id": row.checkpoint_id,
        "step_id": row.step_id,
        "when": row.when,
        "decisions": list(row.decisions),
    }


def cancelled(row: CheckpointRow) -> CheckpointRow:
    return _with_state(row, "cancelled")


def _with_state(row: CheckpointRow, state: CheckpointState) -> CheckpointRow:
    return CheckpointRow(**{**vars(row), "state": state})
