"""TaskChannel: what readers may see, and when a held event becomes visible.

Spec: ORCH-0065 (the terminal state is durable before the closing event is sent),
ORCH-0142 (recovery knows that a best_effort task sent tokens).
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.runtime.channel import TaskChannel


@pytest.mark.req("ORCH-0065", "ORCH-0142")
def test_held_events_and_a_held_close_reach_readers_only_at_release() -> None:
    async def scenario() -> None:
        channel = TaskChannel()
        channel.append("token", "{}")
        assert channel.last_seq == 1
        channel.hold()
        channel.append("token", "{}")
        channel.append("end", "{}")
        channel.close()
        assert (channel.last_seq, channel.closed) == (1, False), "held events leaked to readers"
        assert not await channel.wait_beyond(1, patience_s=0.01)

        waiting = asyncio.ensure_future(channel.wait_beyond(1, patience_s=5))
        await asyncio.sleep(0)
        channel.release()
        assert await waiting
        assert (channel.last_seq, channel.closed) == (3, True)
        assert [e.seq for e in channel.events] == [1, 2, 3]

    asyncio.run(scenario())


def test_an_unheld_channel_shows_each_event_at_once() -> None:
    channel = TaskChannel()
    channel.append("started", "{}")
    channel.close()
    assert (channel.last_seq, channel.closed, channel.held) == (1, True, False)
