"""In-memory event log of one live task, which stream readers follow.

Readers never block the producer: appending resolves one shared future that
every waiting reader awaits, so N readers cost one wake-up each per batch of
events, not one per event.
"""

from __future__ import annotations

import asyncio

from orchestrator.store import EventRow


class TaskChannel:
    def __init__(self, events: list[EventRow] | None = None) -> None:
        self.events: list[EventRow] = list(events or [])
        """Every event of the task so far; ``events[i].seq == i + 1``."""
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def last_seq(self) -> int:
        return len(self.events)

    def append(self, event: str, data: str) -> EventRow:
        row = EventRow(len(self.events) + 1, event, data)
        self.events.append(row)
        self._wake()
        return row

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_beyond(self, seq: int, patience_s: float) -> bool:
        """Wait until an event after ``seq`` exists or the channel closes; False on timeout."""
        if len(self.events) > seq or self.closed:
            return True
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), patience_s)
        except TimeoutError:
            return False
        return True
