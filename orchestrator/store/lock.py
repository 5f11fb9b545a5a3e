"""One server per database: an exclusive lock on a file beside it.

Two servers on one database would both recover its queued and running tasks
and run some of them twice. A server holds an exclusive lock (``flock`` on
POSIX, ``LockFileEx`` on Windows, through ``filelock``) on ``<database>.lock``
for as long as it serves; the OS drops the lock when the process ends in any
way, ``kill -9`` included (ORCH-0174, ORCH-0175), so a stale lock file never
blocks a restart. The lock file itself stays: it holds nothing.
"""

from __future__ import annotations

import os

from filelock import FileLock, Timeout

from orchestrator.store.db import StoreError


class DatabaseInUse(StoreError):
    """Another running server holds the database."""


class DatabaseLock:
    """The lock of one database file; ``":memory:"`` has nothing to lock."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = None if database == ":memory:" else f"{os.path.realpath(database)}.lock"
        self._lock = (
            None
            if self.path is None
            # No soft (file-exists) fallback: a crash would leave it behind, and no
            # server could start until someone deleted it by hand.
            else FileLock(self.path, thread_local=False, fallback_to_soft=False)
        )

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds for another server to let go.

        Raises :class:`DatabaseInUse` when it stays taken, :class:`StoreError`
        when the lock file cannot be created.
        """
        if self._lock is None or self._lock.is_locked:
            return
        try:
            os.makedirs(os.path.dirname(self.path or "."), exist_ok=True)
            self._lock.acquire(timeout=wait_s)
        except Timeout:
            waited = f" (waited {wait_s:g} s)" if wait_s else ""
            raise DatabaseInUse(
                f"database {self.database} is in use by another orchestratord{waited}: "
                f"{self.path} is locked"
            ) from None
        except (OSError, NotImplementedError) as exc:
            raise StoreError(f"cannot lock database {self.database}: {exc!r}") from None

    def release(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release(force=True)
