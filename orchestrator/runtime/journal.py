"""The runtime's writes while tasks run, committed in groups, shown only once durable.

Everything a running task changes (its attempt rows, its task row, its stream
events) is queued here in order and committed with the store's next group
commit: at the end of the loop turn in which it was queued, with that turn's
admissions, and no more often than every ``min_interval_s``. What a write makes
true is shown only after its commit: stream events are revealed to readers
(:meth:`TaskChannel.reveal`) and callbacks given to :meth:`Journal.then` run
(a finished task leaves the live set, its stream closes). So a reader never
sees an event that a crash could take back, and recovery, which numbers the
next event after the last one persisted, never reuses an id a reader has seen
(ORCH-0169, ORCH-0144).

When the database cannot be written (disk full, I/O error), the commit is
rolled back, nothing of it is shown, and everything stays queued, in order: the
journal tries again with a backoff from ``retry_s`` up to ``max_retry_s``,
logs once when writes start failing and once when they succeed again
(ORCH-0172), and until then tells the runtime it is failing (:attr:`failing`)
so that no new attempt starts. Running tasks keep their events in memory
meanwhile; once the write succeeds, their readers get everything at once and
the tasks finish as if nothing happened (ORCH-0171).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import Store, StoreError, is_storage_fault

log = logging.getLogger("orchestrator.journal")

EventRow = tuple[str, int, str, str]
"""``(task_id, seq, event, data)``, as ``Store.insert_events`` takes it."""

Write = EventRow | Callable[[], None]


@dataclass
class _Batch:
    writes: list[Write] = field(default_factory=list)
    reveal: dict[TaskChannel, int] = field(default_factory=dict)
    """The channels with events in this batch, and the last of those events."""
    then: list[Callable[[], None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.writes or self.then)

    def prepend(self, earlier: _Batch) -> None:
        self.writes[:0] = earlier.writes
        for channel, seq in earlier.reveal.items():
            self.reveal[channel] = max(seq, self.reveal.get(channel, 0))
        self.then[:0] = earlier.then


class Journal:
    """Ordered writes of running tasks; attached to the store, which commits them."""

    def __init__(
        self,
        store: Store,
        *,
        before_write: Callable[[], None] = lambda: None,
        on_recovered: Callable[[], None] = lambda: None,
        min_interval_s: float = 0.001,
        retry_s: float = 0.05,
        max_retry_s: float = 1.0,
    ) -> None:
        self._store = store
        self._before_write = before_write
        self._on_recovered = on_recovered
        self._min_interval = min_interval_s
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._pending = _Batch()
        self._writing: _Batch | None = None
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_commit = 0.0
        self._backoff = 0.0
        self.failing_since: float | None = None
        """When writes started failing (``time.monotonic()``), or None while they succeed."""
        store.attach(self)

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    # ------------------------------------------------------------ queueing

    def event(self, channel: TaskChannel, task_id: str, seq: int, name: str, data: str) -> None:
        """Persist the channel's event ``seq``; readers see it once that is committed."""
        batch = self._pending
        batch.writes.append((task_id, seq, name, data))
        batch.reveal[channel] = seq
        self._schedule()

    def write(self, write: Callable[[], None]) -> None:
        """Run ``write`` (store calls) in the next commit, after everything queued before it."""
        self._pending.writes.append(write)
        self._schedule()

    def then(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued so far is committed."""
        self._pending.then.append(callback)
        self._schedule()

    def commit_now(self) -> None:
        """Commit what is queued now; raises ``StorageUnavailable``/``StoreError`` on failure.

        For an answer that must be durable before it is sent (a cancellation).
        """
        if self._pending:
            self._store.commit()

    def commit_if_possible(self) -> None:
        """Commit what is queued now, if the database takes it; never raises."""
        if self._pending and not self.failing:
            with contextlib.suppress(StoreError):  # failed() logs it and schedules a retry
                self._store.commit()

    # ------------------------------------------------------------ scheduling

    def _schedule(self) -> None:
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_commit + self._min_interval
        if self.failing:
            due = max(due, loop.time() + self._backoff)
        if due <= loop.time():
            self._handle = loop.call_soon(self._flush)
        else:
            self._handle = loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self._handle = None
        if self._pending:
            try:
                self._store.commit()
            except StoreError as exc:
                if self._handle is None:  # failed() was not reached: make sure of a retry
                    self.failed(exc)

    async def stop(self) -> None:
        """Commit what is queued (what cannot be written is left to recovery)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        try:
            self.commit_now()
        except StoreError as exc:
            log.error(
                "%d writes could not be committed at shutdown: %s", len(self._pending.writes), exc
            )

    # ------------------------------------------------------------ CommitParticipant

    def write_pending(self) -> None:
        """Write the queued batch into the store's open transaction (called by the store).

        ``before_write`` may queue more first: writes deferred until something commits.
        """
        self._before_write()
        batch, self._pending = self._pending, _Batch()
        self._writing = batch
        rows: list[EventRow] = []
        for write in batch.writes:
            if isinstance(write, tuple):
                rows.append(write)
                continue
            if rows:
                self._insert(rows)
                rows = []
            self._run(write)
        if rows:
            self._insert(rows)

    # A write that fails on its own (a bug, not the database) is logged and skipped:
    # retried with the rest, it would hold back every task's progress, and the
    # admissions that share its commits, for good.

    def _run(self, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception as exc:
            if is_storage_fault(exc):
                raise
            log.exception("a journal write failed and was skipped")

    def _insert(self, rows: list[EventRow]) -> None:
        try:
            self._store.insert_events(rows)
        except Exception as exc:
            if is_storage_fault(exc):
                raise
            for row in rows:  # those already in are ignored (INSERT OR IGNORE)
                self._run(functools.partial(self._store.insert_events, [row]))

    def committed(self) -> None:
        batch, self._writing = self._writing, None
        loop = asyncio.get_running_loop()
        self._last_commit = loop.time()
        if self.failing_since is not None:
            log.warning(
                "database writes succeed again after %.1f s; what waited in memory is committed",
                time.monotonic() - self.failing_since,
            )
            self.failing_since = None
            self._backoff = 0.0
            self._on_recovered()
        if batch is None:
            return
        for channel, seq in batch.reveal.items():
            channel.reveal(seq)
        for callback in batch.then:
            try:
                callback()
            except Exception:
                log.exception("publishing a committed write failed")
        if self._pending:
            self._schedule()

    def failed(self, error: StoreError) -> None:
        batch, self._writing = self._writing, None
        if batch is not None:
            self._pending.prepend(batch)
        if not self._pending:
            return
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error(
                "cannot write the database (%s): stream events and task states wait in memory, "
                "no new attempt starts, and the write is retried",
                error,
            )
        self._backoff = min(self._max_retry_s, max(self._retry_s, self._backoff * 2))
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._schedule()
