"""A decode timeout that costs one clock read per token.

``asyncio.timeout()`` around every token creates and cancels a timer per token,
which profiled at ~20 % of a zero-delay stream. This watchdog keeps one timer
per attempt: tokens only record the time of progress, and the timer, when it
fires, either re-arms itself at ``last progress + limit`` or cancels the
decoding task. The limit is exact: it fires after ``limit_s`` without progress.
"""

from __future__ import annotations

import asyncio


class DecodeWatchdog:
    def __init__(self, limit_s: float) -> None:
        self._limit = limit_s
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("DecodeWatchdog needs a running task")
        self._task = task
        self._last = self._loop.time()
        self.expired = False
        self._handle = self._loop.call_at(self._last + limit_s, self._check)

    def progress(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        due = self._last + self._limit
        if self._loop.time() >= due:
            self.expired = True
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(due, self._check)

    def absorb_expiry(self) -> bool:
        """After a CancelledError: True if it was this watchdog's (and only its) doing."""
        return self.expired and self._task.uncancel() == 0

    def close(self) -> None:
        self._handle.cancel()
