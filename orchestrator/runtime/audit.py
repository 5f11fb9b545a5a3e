"""The audit log of runs (spec section 12.7): who did what to a run, append-only.

An entry is built here and written by the run scheduler in the same commit as
the change it records (ORCH-0381); the store refuses to change or delete one
(ORCH-0383). Actors come from the request (``X-Orch-Actor``, a decision's
``decided_by``) or are :data:`SYSTEM` for what the server does on its own.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.errors import ApiError
from orchestrator.runtime.clock import rfc3339
from orchestrator.schemas import AuditEntry, AuditLog
from orchestrator.store import AuditRow, Store
from orchestrator.vocabulary import AuditAction, ErrorKind

ANONYMOUS = "anonymous"
"""The actor of a request without ``X-Orch-Actor`` (ORCH-0382)."""
SYSTEM = "system"
"""The actor of what the server does by itself: the abort when a session ends."""
ACTOR_HEADER = "X-Orch-Actor"
ACTOR_PATTERN = r"^[\x20-\x7e]{1,128}$"
"""1 to 128 characters of printable ASCII (ORCH-0382)."""
_ACTOR = re.compile(ACTOR_PATTERN)


def actor_of(header: str | None) -> str:
    """The actor a request names in ``X-Orch-Actor``; 400 ``INVALID_PARAMS`` when malformed."""
    if header is None:
        return ANONYMOUS
    if not _ACTOR.fullmatch(header):
        raise ApiError(
            ErrorKind.INVALID_PARAMS,
            f"{ACTOR_HEADER}: must be 1 to 128 characters of printable ASCII",
            details={"path": ACTOR_HEADER},
        )
    return header


def entry(
    run_id: str,
    seq: int,
    at_ms: int,
    actor: str,
    action: AuditAction,
    detail: dict[str, Any],
    *,
    step_id: str | None = None,
    checkpoint_id: str | None = None,
) -> AuditRow:
    return AuditRow(run_id, seq, at_ms, actor, action, step_id, checkpoint_id, detail)


def run_audit(store: Store, run_id: str) -> AuditLog:
    """``GET /v1/runs/{id}/audit``: the run's entries in order (ORCH-0380)."""
    if store.get_run(run_id) is None:
        raise ApiError(ErrorKind.NOT_FOUND, f"run {run_id!r} not found")
    rows = store.audit_entries(run_id)
    return AuditLog(
        entries=[
            AuditEntry(
                seq=r.seq,
                at=rfc3339(r.at_ms),
                actor=r.actor,
                action=r.action,
                step_id=r.step_id,
                checkpoint_id=r.checkpoint_id,
                detail=r.detail,
            )
            for r in rows
        ]
    )
