"""Server-sent events framing of a task stream (WHATWG event-stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from orchestrator.numerals import ascii_int
from orchestrator.runtime import StreamSource
from orchestrator.store import EventRow

PING = ": ping\n\n"

LAST_EVENT_ID_PATTERN = "^[0-9]{0,18}$"
"""What ``Last-Event-ID`` may hold (ORCH-0200): empty, or up to 18 ASCII digits (fits int64)."""


def frame(event: EventRow) -> str:
    return f"id: {event.seq}\nevent: {event.event}\ndata: {event.data}\n\n"


async def event_stream(
    source: StreamSource, *, after: int, retry_ms: int, ping_s: float
) -> AsyncIterator[str]:
    """``retry:`` once, then every event after ``after`` in order, pings while idle.

    Events available together are sent as one chunk: one write per batch keeps
    a zero-delay stream from being bound by per-write overhead.
    """
    yield f"retry: {retry_ms}\n\n"
    async for batch in source.batches(after, ping_s):
        if batch is None:
            yield PING
        else:
            yield "".join(frame(event) for event in batch)


def parse_last_event_id(value: str | None) -> int | None:
    """The sequence number a reconnecting client saw last; None if the header is malformed.

    An absent or blank header means "from the start"; anything but ASCII digits
    is malformed (ORCH-0200).
    """
    if value is None or value.strip(" \t") == "":
        return 0
    return ascii_int(value)
