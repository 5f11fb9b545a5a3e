"""In-memory event log of one live task, which stream readers follow.

Readers never block the producer: revealing events resolves one shared future
that every waiting reader awaits, so N readers cost one wake-up each per
commit, not one per event.

An appended event stays invisible until :meth:`reveal` is called for it, which
the journal does once the commit that persisted it has landed: a reader only
ever sees durable events, so after a crash no event id a reader saw can name a
different event (ORCH-0169). A channel made from persisted events shows them
at once.
"""

from __future__ import annotations

import asyncio

from orchestrator.store import EventRow


class TaskChannel:
    def __init__(self, events: list[EventRow] | None = None) -> None:
        self.events: list[EventRow] = list(events or [])
        """Every event of the task so far, unrevealed ones included; ``events[i].seq == i + 1``."""
        self.closed = False
        """Readers have seen the last event; set by :meth:`close`, after the last reveal."""
        self._visible = len(self.events)
        self._waiter: asyncio.Future[None] | None = None

    @property
    def last_seq(self) -> int:
        """The last event readers may see."""
        return self._visible

    def append(self, event: str, data: str) -> EventRow:
        """Add the next event, invisible to readers until it is revealed."""
        row = EventRow(len(self.events) + 1, event, data)
        self.events.append(row)
        return row

    def reveal(self, seq: int) -> None:
        """Let readers see every event up to ``seq`` (now durable)."""
        if seq > self._visible:
            self._visible = min(seq, len(self.events))
            self._wake()

    def close(self) -> None:
        """No event follows the visible ones: readers end their streams."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_beyond(self, seq: int, patience_s: float) -> bool:
        """Wait until an event after ``seq`` is visible or the channel closes; False on timeout."""
        if self._visible > seq or self.closed:
            return True
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiter), patience_s)
        except TimeoutError:
            return False
        return True
