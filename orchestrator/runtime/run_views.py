"""What readers of runs see: the wire models of runs and definitions, and listing cursors.

Built from the rows a run is stored as (:mod:`orchestrator.store`), whether the
run is live (its rows in memory) or ended (read back from the store), so both
answer the same (ORCH-0314, ORCH-0320..0323).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime

from orchestrator.errors import ApiError
from orchestrator.runs import ParsedDefinition
from orchestrator.runtime.clock import rfc3339
from orchestrator.schemas import (
    Definition,
    DefinitionDocument,
    DefinitionSummary,
    Run,
    RunSummary,
    Step,
    StepAttempt,
    TaskError,
)
from orchestrator.store import ChildRow, DefinitionRow, RunRow, StepAttemptRow, StepRow
from orchestrator.vocabulary import ErrorKind


def run_view(
    row: RunRow,
    steps: Iterable[StepRow],
    attempts: dict[str, list[StepAttemptRow]],
    parsed: ParsedDefinition | None,
    parent: ChildRow | None = None,
    children: dict[str, dict[int, str]] | None = None,
) -> Run:
    """``GET /v1/runs/{id}``: the run and every step in the definition's order, with the
    run's parent and each step's child runs (ORCH-0488)."""
    children = children or {}
    declared = {s.id: s for s in parsed.document.steps} if parsed is not None else {}
    out: list[Step] = []
    for step in sorted(steps, key=lambda s: s.position):
        made = attempts.get(step.step_id, [])
        spec = declared.get(step.step_id)
        out.append(
            Step(
                step_id=step.step_id,
                state=step.state,
                depends_on=list(spec.depends_on) if spec is not None else [],
                pool=spec.pool if spec is not None else "",
                seed=step.seed,
                task_id=next((a.task_id for a in reversed(made) if a.task_id), None),
                attempts=[
                    StepAttempt(
                        attempt=a.attempt,
                        task_id=a.task_id,
                        error=None if a.error is None else TaskError(**a.error),
                        started_at=rfc3339(a.started_ms),
                    )
                    for a in made
                ],
                output=step.output,
                error=None if step.error is None else TaskError(**step.error),
                started_at=rfc3339(step.started_ms),
                finished_at=rfc3339(step.finished_ms),
                children=[c for _, c in sorted(children.get(step.step_id, {}).items())],
            )
        )
    return Run(
        run_id=row.run_id,
        session_id=row.session_id,
        definition=row.definition,
        version=row.version,
        state=row.state,
        seed=row.seed,
        max_parallel=row.max_parallel,
        inputs=row.inputs,
        steps=out,
        created_at=rfc3339(row.created_ms),
        finished_at=rfc3339(row.finished_ms),
        events_url=f"/v1/runs/{row.run_id}/events",
        parent_run_id=parent.parent_run_id if parent is not None else None,
        parent_step_id=parent.parent_step_id if parent is not None else None,
        parent_item=parent.item if parent is not None else None,
    )


def stored_children(rows: Iterable[ChildRow]) -> dict[str, dict[int, str]]:
    """A run's child runs as stored, by step, then item."""
    out: dict[str, dict[int, str]] = {}
    for row in rows:
        out.setdefault(row.parent_step_id, {})[row.item] = row.child_run_id
    return out


def run_summary(row: RunRow) -> RunSummary:
    """One run of ``GET /v1/runs``."""
    return RunSummary(
        run_id=row.run_id,
        session_id=row.session_id,
        definition=row.definition,
        version=row.version,
        state=row.state,
        created_at=rfc3339(row.created_ms),
        finished_at=rfc3339(row.finished_ms),
    )


def definition_summary(row: DefinitionRow) -> DefinitionSummary:
    """One definition of ``GET /v1/definitions``."""
    return DefinitionSummary(
        name=row.name, version=row.version, digest=row.digest, created_at=rfc3339(row.created_ms)
    )


def definition_view(row: DefinitionRow) -> Definition:
    return Definition(
        name=row.name,
        version=row.version,
        digest=row.digest,
        created_at=rfc3339(row.created_ms),
        definition=DefinitionDocument.model_validate(row.document),
    )


def encode_cursor(at_ms: int, *keys: str) -> str:
    """An opaque cursor: the listing key of the page's last item (a time, then ids)."""
    raw = json.dumps([at_ms, *keys], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: int = 1) -> tuple[int, tuple[str, ...]]:
    """The key :func:`encode_cursor` encoded, with ``keys`` ids after the time."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_ms, *ids = json.loads(raw)
        if type(at_ms) is not int or len(ids) != keys or not all(isinstance(i, str) for i in ids):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(ErrorKind.INVALID_PARAMS, "cursor: not a cursor this server gave") from None
    return at_ms, tuple(ids)


def parse_time(value: str | None, name: str) -> int | None:
    """An RFC 3339 query parameter in epoch milliseconds; 400 ``INVALID_PARAMS`` otherwise."""
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.utcoffset() is None:
        raise ApiError(ErrorKind.INVALID_PARAMS, f"{name}: must be an RFC 3339 timestamp")
    return int(stamp.timestamp() * 1000)
