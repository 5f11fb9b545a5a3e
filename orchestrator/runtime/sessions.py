"""Sessions: created, read, ended and purged; every task lives in one (ORCH-0006).

An open session is immutable until it ends, and only this process ends it, so
open sessions are cached (least recently used first out): an admission finds
its session without a database read.
"""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.errors import ApiError
from orchestrator.runtime.clock import rfc3339
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.starts import AttemptStarts
from orchestrator.runtime.termination import Termination
from orchestrator.schemas import SessionCreate, SessionCreated, SessionInfo, TaskCounts
from orchestrator.store import SessionRow
from orchestrator.vocabulary import ErrorKind

CACHE_SIZE = 4096
"""Open sessions kept in memory."""


class Sessions:
    def __init__(
        self, context: RuntimeContext, starts: AttemptStarts, termination: Termination
    ) -> None:
        self._context = context
        self._starts = starts
        self._termination = termination
        self._open: OrderedDict[str, SessionRow] = OrderedDict()
        self._cache_size = CACHE_SIZE if context.config.tuning.session_cache else 0

    def create(self, body: SessionCreate) -> SessionCreated:
        now = self._context.clock.now_ms()
        row = SessionRow(
            session_id=self._context.new_id("sess"),
            ttl_seconds=body.ttl_seconds,
            metadata=body.metadata,
            created_ms=now,
            expires_ms=now + body.ttl_seconds * 1000,
            ended_ms=None,
        )
        self._context.store.insert_session(row)
        self._remember(row)
        return _created(row)

    def info(self, session_id: str) -> SessionInfo:
        """The session with its TTL left and its tasks counted by state (ORCH-0027..0032)."""
        row = self.active(session_id)
        context = self._context
        self._starts.write_session(session_id)  # the counts see every running task as running
        context.journal.commit_if_possible()
        return SessionInfo(
            **dict(_created(row)),
            ttl_remaining_ms=max(0, row.expires_ms - context.clock.now_ms()),
            tasks=TaskCounts(**context.store.session_task_counts(session_id)),
        )

    def end(self, session_id: str) -> None:
        """End the session and cancel its queued and running tasks (ORCH-0033, ORCH-0034)."""
        self.open(session_id)
        context = self._context
        context.store.end_session(session_id, context.clock.now_ms())
        self._open.pop(session_id, None)
        for listener in context.session_ending:
            listener(session_id)
        for lt in context.live.of_session(session_id):
            self._termination.cancel(lt, "session ended")
        context.journal.commit_now()

    def open(self, session_id: str) -> SessionRow:
        """The session, unless it is unknown or ended (404 ``NOT_FOUND``)."""
        row = self._open.get(session_id)
        if row is None:
            row = self._context.store.get_session(session_id)
            if row is None or row.ended_ms is not None:
                raise ApiError(ErrorKind.NOT_FOUND, f"session {session_id!r} not found")
            self._remember(row)
        return row

    def active(self, session_id: str) -> SessionRow:
        """The session, unless unknown or ended (404) or past its TTL (410 ``SESSION_EXPIRED``)."""
        row = self.open(session_id)
        if self._context.clock.now_ms() >= row.expires_ms:
            raise ApiError(ErrorKind.SESSION_EXPIRED, f"session {session_id!r} has expired")
        return row

    def purge(self, cutoff_ms: int) -> int:
        """Delete sessions ended or expired before ``cutoff_ms`` with their tasks; how many."""
        purged = self._context.store.purge_sessions(cutoff_ms)
        if purged:
            for session_id, row in list(self._open.items()):
                if row.expires_ms < cutoff_ms:
                    del self._open[session_id]
        return purged

    def _remember(self, row: SessionRow) -> None:
        self._open[row.session_id] = row
        if len(self._open) > self._cache_size:
            self._open.popitem(last=False)


def _created(row: SessionRow) -> SessionCreated:
    return SessionCreated(
        session_id=row.session_id,
        ttl_seconds=row.ttl_seconds,
        created_at=rfc3339(row.created_ms),
        expires_at=rfc3339(row.expires_ms),
        metadata=row.metadata,
    )
