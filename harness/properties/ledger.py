"""Task states persisted in orchestratord's real store, for the simulated restart.

The property machine plays the runtime's part: every admission, dispatch,
eviction, cancellation and completion is written through
:class:`orchestrator.store.db.Store` (real SQLite, the same rows and
``admit_seq`` ordering the server uses). A restart closes the store, opens the
file again as a new process would, and rebuilds a fresh queue from
``Store.live_tasks()`` exactly as ``Service._recover`` does for queued tasks:
``queue.restore(task_id, priority)`` in admission order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.vocabulary import TERMINAL_STATES as TERMINAL
from orchestrator.vocabulary import Priority

if TYPE_CHECKING:
    from orchestrator.store.db import Store

__all__ = ["TERMINAL", "Ledger"]

SESSION = "sess_properties"
POOL = "default"


def _scratch_root() -> str | None:
    """A RAM-backed directory when there is one: the store's fsyncs on close were most of
    the suite's time on disk, and durability across a real crash is not what is tested."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class Ledger:
    """One pool's tasks in a throwaway SQLite file; ``close`` removes it."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="orchq-properties-", dir=_scratch_root()))
        self.path = self._dir / "orchq.db"
        self.store = self._open()
        from orchestrator.store.db import SessionRow

        self.store.insert_session(SessionRow(SESSION, 3600, {}, 0, 3_600_000, None))
        self._seq = 0

    def _open(self) -> Store:
        from orchestrator.store.db import Store

        return Store(self.path)

    def admitted(self, task_id: str, priority: Priority) -> None:
        from orchestrator.store.db import TaskRow

        self._seq += 1
        self.store.insert_task(
            TaskRow(
                task_id=task_id,
                session_id=SESSION,
                admit_seq=self._seq,
                pool_id=POOL,
                priority=priority,
                prompt="p",
                max_tokens=1,
                params={},
                seed=0,
                state="queued",
                replica_id=None,
                engine=None,
                engine_version=None,
                tokens_out=0,
                finish_reason=None,
                error=None,
                created_ms=self._seq,
                started_ms=None,
                finished_ms=None,
            )
        )

    def moved(self, task_id: str, state: str) -> None:
        self.store.update_task(task_id, state=state)

    def state(self, task_id: str) -> str | None:
        row = self.store.get_task(task_id)
        return None if row is None else row.state

    def states(self, task_ids: list[str]) -> dict[str, str | None]:
        return {task_id: self.state(task_id) for task_id in task_ids}

    def restart(self) -> list[tuple[str, str]]:
        """Close and reopen the database; the queued ``(task_id, priority)`` in admission order."""
        self.store.close()
        self.store = self._open()
        return [(r.task_id, r.priority) for r in self.store.live_tasks() if r.state == "queued"]

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self._dir, ignore_errors=True)
