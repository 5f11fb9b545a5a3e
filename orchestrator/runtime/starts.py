"""Attempt starts, written with the next commit rather than at once.

Stream readers see nothing of an attempt before its first event, so an
attempt's start (its ``attempts`` row and the task's ``running`` fields) waits
in memory for the next commit, which holds that event; or for the attempt's
outcome, when the attempt ends in the same loop turn (one row write instead of
two); or for a read of the task or its session, which must see it. A crash
before any of these finds the task still queued, and it runs again: it sent
nothing (ORCH-0140).
"""

from __future__ import annotations

from typing import Any

from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.tasks import LiveTask
from orchestrator.store import AttemptRow

PendingStart = tuple[AttemptRow, dict[str, Any]]
"""The attempt's row and the task fields its start sets."""


class AttemptStarts:
    def __init__(self, context: RuntimeContext) -> None:
        self._context = context
        self._unwritten: dict[str, LiveTask] = {}
        """Running tasks whose attempt start is not queued for writing yet."""

    def defer(self, lt: LiveTask, attempt: AttemptRow, fields: dict[str, Any]) -> None:
        """An attempt began: its start waits for the next commit."""
        lt.pending_start = (attempt, fields)
        self._unwritten[lt.task_id] = lt

    def write(self, lt: LiveTask) -> None:
        """Queue ``lt``'s attempt start in the journal now, if it waits."""
        started = self.take(lt)
        if started is None:
            return
        attempt, fields = started
        store = self._context.store

        def write() -> None:
            store.insert_attempt(attempt)
            store.update_task(attempt.task_id, **fields)

        self._context.journal.write(write)

    def write_all(self) -> None:
        """Before each commit: every waiting start joins it."""
        for lt in list(self._unwritten.values()):
            self.write(lt)

    def write_session(self, session_id: str) -> None:
        """Queue the waiting starts of one session's tasks (a read of the session counts them)."""
        for lt in [lt for lt in self._unwritten.values() if lt.row.session_id == session_id]:
            self.write(lt)

    def take(self, lt: LiveTask) -> PendingStart | None:
        """``lt``'s waiting start, which the caller now writes itself; None if none waits."""
        started, lt.pending_start = lt.pending_start, None
        self._unwritten.pop(lt.task_id, None)
        return started
