"""The link of each child run to the run, step and item that created it (ORCH-0487, ORCH-0488).

One row per child run: its primary key ``(parent_run_id, parent_step_id, item)``
makes creating a child idempotent per item, also across restarts; the row goes
with the parent step (and so with the session) and with the child run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ChildRow:
    parent_run_id: str
    parent_step_id: str
    item: int
    child_run_id: str


_CHILD_COLUMNS = "parent_run_id, parent_step_id, item, child_run_id"


class RunChildren:
    """Child-run statements; mixed into :class:`~orchestrator.store.Store`."""

    _connection: sqlite3.Connection
    settle: Callable[[], None]

    def insert_child(self, row: ChildRow) -> None:
        self.settle()
        self._connection.execute(
            f"INSERT INTO run_children ({_CHILD_COLUMNS}) VALUES (?, ?, ?, ?)",
            (row.parent_run_id, row.parent_step_id, row.item, row.child_run_id),
        )

    def children_of(self, run_id: str) -> list[ChildRow]:
        """The child runs a run created, by step, then item."""
        rows = self._connection.execute(
            f"SELECT {_CHILD_COLUMNS} FROM run_children WHERE parent_run_id = ? "
            "ORDER BY parent_step_id, item",
            (run_id,),
        ).fetchall()
        return [ChildRow(*row) for row in rows]

    def parent_of(self, run_id: str) -> ChildRow | None:
        row = self._connection.execute(
            f"SELECT {_CHILD_COLUMNS} FROM run_children WHERE child_run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else ChildRow(*row)
