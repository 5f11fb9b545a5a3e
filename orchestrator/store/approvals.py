"""Rows and queries of run checkpoints and the run audit log (spec sections 12.6, 12.7).

:class:`RunApprovals` is a part of :class:`~orchestrator.store.Store` kept in
its own module: its statements run on the store's connection, inside the run's
transaction like every other write of a run. Invariants: a checkpoint row is
keyed by its run and its id, which never changes (ORCH-0364); audit rows are
only ever inserted, and the database itself refuses to change or delete one
while its run exists (triggers of migration 4, ORCH-0383).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.vocabulary import AuditAction, CheckpointState, CheckpointWhen, Decision


@dataclass
class CheckpointRow:
    run_id: str
    checkpoint_id: str
    step_id: str
    when: CheckpointWhen
    number: int
    """The checkpoint's ``n``: it counts the step's checkpoints of this ``when`` from 1."""
    state: CheckpointState
    decisions: list[Decision]
    output: str | None
    requested_ms: int
    decided_ms: int | None = None
    decision: Decision | None = None
    decided_by: str | None = None
    prompt: str | None = None
    """A ``retry`` decision's prompt for the step's next attempts."""
    inputs: dict[str, Any] | None = None
    """A ``retry`` decision's inputs, the run's updated by them, for the next attempts."""
    error: dict[str, Any] | None = None
    """The error a step held by ``on_failure: hold`` would have failed with."""


@dataclass(frozen=True)
class AuditRow:
    run_id: str
    seq: int
    at_ms: int
    actor: str
    action: AuditAction
    step_id: str | None
    checkpoint_id: str | None
    detail: dict[str, Any]


_CHECKPOINT_COLUMNS = (
    'run_id, checkpoint_id, step_id, "when", number, state, decisions, output, requested_ms, '
    "decided_ms, decision, decided_by, prompt, inputs, error"
)


def _checkpoint(row: tuple[Any, ...]) -> CheckpointRow:
    values = list(row)
    values[6] = json.loads(values[6])
    values[13] = None if values[13] is None else json.loads(values[13])
    values[14] = None if values[14] is None else json.loads(values[14])
    return CheckpointRow(*values)


class RunApprovals:
    """Checkpoint and audit statements; mixed into :class:`~orchestrator.store.Store`."""

    _connection: sqlite3.Connection
    _canonical: Callable[[Any], str]
    settle: Callable[[], None]

    def save_checkpoint(self, row: CheckpointRow) -> None:
        """Insert the checkpoint, or write its decision (only the decision's columns change)."""
        self.settle()
        self._connection.execute(
            f"INSERT INTO run_checkpoints ({_CHECKPOINT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, checkpoint_id) DO UPDATE SET state = excluded.state, "
            "decided_ms = excluded.decided_ms, decision = excluded.decision, "
            "decided_by = excluded.decided_by, prompt = excluded.prompt, "
            "inputs = excluded.inputs",
            (
                row.run_id,
                row.checkpoint_id,
                row.step_id,
                row.when,
                row.number,
                row.state,
                self._canonical(row.decisions),
                row.output,
                row.requested_ms,
                row.decided_ms,
                row.decision,
                row.decided_by,
                row.prompt,
                None if row.inputs is None else self._canonical(row.inputs),
                None if row.error is None else self._canonical(row.error),
            ),
        )

    def run_checkpoints(self, run_id: str) -> list[CheckpointRow]:
        """A run's checkpoints in the order they were requested."""
        rows = self._connection.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM run_checkpoints WHERE run_id = ? "
            "ORDER BY requested_ms, checkpoint_id",
            (run_id,),
        ).fetchall()
        return [_checkpoint(row) for row in rows]

    def get_checkpoint(self, run_id: str, checkpoint_id: str) -> CheckpointRow | None:
        row = self._connection.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM run_checkpoints "
            "WHERE run_id = ? AND checkpoint_id = ?",
            (run_id, checkpoint_id),
        ).fetchone()
        return None if row is None else _checkpoint(row)

    def list_checkpoints(
        self,
        *,
        state: CheckpointState | None,
        run_id: str | None,
        after: tuple[int, str, str] | None,
        limit: int,
    ) -> list[CheckpointRow]:
        """Checkpoints in ``(requested_ms, run_id, checkpoint_id)`` order after the cursor's key."""
        clauses: list[str] = []
        values: list[Any] = []
        if state is not None:
            clauses.append("state = ?")
            values.append(state)
        if run_id is not None:
            clauses.append("run_id = ?")
            values.append(run_id)
        if after is not None:
            clauses.append("(requested_ms, run_id, checkpoint_id) > (?, ?, ?)")
            values.extend(after)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        rows = self._connection.execute(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM run_checkpoints {where}"
            "ORDER BY requested_ms, run_id, checkpoint_id LIMIT ?",
            (*values, limit),
        ).fetchall()
        return [_checkpoint(row) for row in rows]

    def pending_checkpoint_counts(self) -> dict[str, int]:
        """The number of pending checkpoints, by ``when``."""
        rows = self._connection.execute(
            'SELECT "when", COUNT(*) FROM run_checkpoints WHERE state = ? GROUP BY "when"',
            ("pending",),
        ).fetchall()
        return {str(when): int(count) for when, count in rows}

    def insert_audit(self, rows: Iterable[AuditRow]) -> None:
        self.settle()
        self._connection.executemany(
            "INSERT INTO run_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.run_id,
                    r.seq,
                    r.at_ms,
                    r.actor,
                    r.action,
                    r.step_id,
                    r.checkpoint_id,
                    self._canonical(r.detail),
                )
                for r in rows
            ],
        )

    def audit_entries(self, run_id: str) -> list[AuditRow]:
        rows = self._connection.execute(
            "SELECT run_id, seq, at_ms, actor, action, step_id, checkpoint_id, detail "
            "FROM run_audit WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        return [AuditRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]
