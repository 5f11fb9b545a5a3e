"""What a stream reader follows: a live task's channel, or a finished task's stored events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import EventRow


class StreamSource:
    def __init__(self, channel: TaskChannel | None, replay: list[EventRow]) -> None:
        self.channel = channel
        """The live task's channel; None for a finished task."""
        self.replay = replay
        """A finished task's events after the reader's last one."""

    async def batches(self, after: int, ping_s: float) -> AsyncIterator[list[EventRow] | None]:
        """Lists of events after ``after``, in order; ``None`` asks the caller to send a ping."""
        if self.channel is None:
            if self.replay:
                yield self.replay
            return
        channel, seq = self.channel, after
        while True:
            if channel.last_seq > seq:
                batch = channel.events[seq : channel.last_seq]
                seq = channel.last_seq
                yield batch
            elif channel.closed:
                return
            elif not await channel.wait_beyond(seq, ping_s):
                yield None
