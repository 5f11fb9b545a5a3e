"""Time sources, injectable so tests can expire sessions without sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import overload


class Clock:
    """Wall-clock milliseconds for persisted timestamps and TTLs."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock(Clock):
    """A clock that only moves when told to (tests)."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms


async def sleep_at_least(seconds: float) -> None:
    """``asyncio.sleep`` that never returns before ``seconds`` have passed.

    uvloop's timers have millisecond resolution and fire up to ~1 ms before
    the delay asked for; a wait such as an engine's Retry-After is a lower
    bound, so whatever is left is slept again.
    """
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:  # noqa: ASYNC110 (a deadline, no event)
        await asyncio.sleep(remaining)


@overload
def rfc3339(ms: int) -> str: ...
@overload
def rfc3339(ms: None) -> None: ...
@overload
def rfc3339(ms: int | None) -> str | None: ...


def rfc3339(ms: int | None) -> str | None:
    """RFC 3339 UTC with millisecond precision, e.g. ``2026-01-01T00:00:00.000Z``."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
