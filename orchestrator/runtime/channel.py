"""In-memory event log of one live task, which stream readers follow.

Readers never block the producer: appending resolves one shared future that
every waiting reader awaits, so N readers cost one wake-up each per batch of
events, not one per event.

Events that must be durable before anyone sees them (a task's first token, its
closing event) are appended while the channel is *held*: readers see them, and
the close, only once the commit that persisted them calls :meth:`release`.
"""

from __future__ import annotations

import asyncio

from orchestrator.store import EventRow


class TaskChannel:
    def __init__(self, events: list[EventRow] | None = None) -> None:
        self.events: list[EventRow] = list(events or [])
        """Every event of the task so far, held ones included; ``events[i].seq == i + 1``."""
        self.closed = False
        """Readers have seen the last event: set by :meth:`close`, or at release if held."""
        self._visible = len(self.events)
        self._held = False
        self._closing = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def last_seq(self) -> int:
        """The last event readers may see."""
        return self._visible

    @property
    def held(self) -> bool:
        return self._held

    def append(self, event: str, data: str) -> EventRow:
        row = EventRow(len(self.events) + 1, event, data)
        self.events.append(row)
        if not self._held:
            self._visible = len(self.events)
            self._wake()
        return row

    def hold(self) -> None:
        """Keep events appended from now on (and a close) from readers until :meth:`release`."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._visible = len(self.events)
        if self._closing:
            self.closed = True
        self._wake()

    def close(self) -> None:
        self._closing = True
        if not self._held:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_beyond(self, seq: int, patience_s: float) -> bool:
        """Wait until an event after ``seq`` exists or the channel closes; False on timeout."""
        if self._visible > seq or self.closed:
            return True
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), patience_s)
        except TimeoutError:
            return False
        return True
