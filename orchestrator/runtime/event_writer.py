"""Batched persistence of stream events.

A token event is sent to readers at once and written to SQLite within
``interval_s`` (or as soon as ``batch_size`` are pending): one transaction per
batch instead of one per token. Terminal events are flushed before the task is
reported finished, so a finished task's stream always replays in full. Tokens
of a running task lost to a crash are regenerated on recovery (strict mode) or
end the task (best effort), as the spec says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from orchestrator.store import Store

log = logging.getLogger("orchestrator.events")


class EventWriter:
    def __init__(self, store: Store, *, batch_size: int = 512, interval_s: float = 0.02) -> None:
        self._store = store
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._pending: list[tuple[str, int, str, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def add(self, task_id: str, seq: int, event: str, data: str) -> None:
        self._pending.append((task_id, seq, event, data))
        if len(self._pending) >= self._batch_size:
            self.flush()
        elif len(self._pending) == 1:
            self._wakeup.set()

    def flush(self, also: Callable[[], None] | None = None, *, grouped: bool = False) -> None:
        """Write pending events, and run ``also`` in the same transaction.

        A task's terminal event and its terminal state are committed together,
        so a crash can never leave an ``end`` event on a task that recovery
        would run again, nor a finished task whose stream lacks its end.
        ``grouped``: a write deferred into the open admission group (see
        :meth:`Store.defer`) instead of a commit now; publish what it makes true
        with :meth:`Store.after_commit`.
        """
        if not self._pending and also is None:
            return
        batch, self._pending = self._pending, []
        if grouped:

            def write() -> None:
                self._store.insert_events(batch)
                if also is not None:
                    also()

            self._store.defer(write)
            return
        try:
            with self._store.transaction():
                self._store.insert_events(batch)
                if also is not None:
                    also()
        except BaseException:
            self._pending = batch + self._pending
            raise

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orchq-event-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._interval_s)
            try:
                self.flush()
            except Exception:  # keep the writer alive; the next flush retries the batch
                log.exception("flushing stream events failed")
