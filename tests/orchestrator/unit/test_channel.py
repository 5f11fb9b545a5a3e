"""TaskChannel: readers see an event only once it is revealed (durable), and the close last.

Spec: ORCH-0065 (the terminal state is durable before the closing event is sent),
ORCH-0169 (an event is persisted before any client can receive it).
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.runtime.channel import TaskChannel
from orchestrator.store import EventRow


@pytest.mark.req("ORCH-0065", "ORCH-0169")
def test_appended_events_reach_readers_only_when_revealed() -> None:
    async def scenario() -> None:
        channel = TaskChannel()
        channel.append("started", "{}")
        channel.append("token", "{}")
        assert channel.last_seq == 0, "an event reached readers before it was durable"
        assert not await channel.wait_beyond(0, patience_s=0.01)

        waiting = asyncio.ensure_future(channel.wait_beyond(0, patience_s=5))
        await asyncio.sleep(0)
        channel.reveal(1)
        assert await waiting
        assert channel.last_seq == 1
        channel.append("end", "{}")
        channel.reveal(3)
        channel.close()
        assert (channel.last_seq, channel.closed) == (3, True)
        assert [e.seq for e in channel.events] == [1, 2, 3]

    asyncio.run(scenario())


def test_revealing_never_goes_back_nor_past_the_events_appended() -> None:
    channel = TaskChannel()
    channel.append("started", "{}")
    channel.reveal(5)
    assert channel.last_seq == 1
    channel.append("token", "{}")
    channel.reveal(2)
    channel.reveal(1)
    assert channel.last_seq == 2


def test_a_channel_of_persisted_events_shows_them_at_once() -> None:
    channel = TaskChannel([EventRow(1, "started", "{}"), EventRow(2, "token", "{}")])
    assert channel.last_seq == 2
    assert channel.append("token", "{}").seq == 3
    assert channel.last_seq == 2
