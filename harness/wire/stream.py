"""Read a task stream off the wire the way an EventSource does, keeping what it saw.

The typed client reconnects and de-duplicates; a conformance check must see the
raw sequence instead: every ``retry:`` line, every ``: ping`` comment, every
``id:`` exactly as sent, and when the server closed the response. Reading is
incremental, so a check can act in the middle of a stream (cancel the task,
drop the connection and resume) through ``on_event``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.fuzz.sse import stream_problems
from orchestrator.numerals import ascii_int

if TYPE_CHECKING:
    from harness.wire.http import Wire


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: ``id`` and ``event`` as sent, ``data`` decoded (or raw text)."""

    id: str | None
    event: str
    data: Any
    received_at: float
    """``time.monotonic()`` when the event was complete on the wire."""

    @property
    def seq(self) -> int:
        value = None if self.id is None else ascii_int(self.id)
        return -1 if value is None else value

    def key(self) -> tuple[str | None, str, str]:
        """The event as a comparable value (what a replay must reproduce exactly)."""
        return (self.id, self.event, json.dumps(self.data, sort_keys=True))


@dataclass
class SseCapture:
    """What one stream request returned."""

    status: int
    content_type: str
    body: str = ""
    lines: list[str] = field(default_factory=list)
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    after: int = 0

    @property
    def names(self) -> list[str]:
        return [event.event for event in self.events]

    @property
    def ids(self) -> list[int]:
        return [event.seq for event in self.events]

    def tokens(self) -> list[SseEvent]:
        return [event for event in self.events if event.event == "token"]

    def format_problems(self) -> list[str]:
        """ORCH-0071/0072/0073/0076/0081 on the raw body (see :mod:`harness.fuzz.sse`)."""
        return stream_problems(self.body, after=self.after, complete=self.closed_by_server)


def read_stream(
    wire: Wire,
    task_id: str,
    *,
    last_event_id: int | None = None,
    on_event: Callable[[SseEvent], bool] | None = None,
    timeout: float = 30.0,
    path: str | None = None,
) -> SseCapture:
    """GET the task's stream (or the stream at ``path``, a run's events); read until the
    server closes it or ``on_event`` returns True."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    deadline = time.monotonic() + timeout
    with wire.http.stream(
        "GET", path or f"/v1/tasks/{task_id}/stream", headers=headers, timeout=timeout
    ) as response:
        capture = SseCapture(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            after=last_event_id or 0,
        )
        if response.status_code != 200:
            capture.body = response.read().decode("utf-8", "replace")
            capture.closed_by_server = True
            return capture
        fields: dict[str, str] = {}
        stopped = False
        for line in response.iter_lines():
            capture.lines.append(line)
            if line == "":
                if fields:
                    event = _event(fields)
                    capture.events.append(event)
                    fields = {}
                    if on_event is not None and on_event(event):
                        stopped = True
                        break
            elif line.startswith(":"):
                capture.comments.append(line)
            else:
                name, _, value = line.partition(":")
                if name == "retry":
                    capture.retries.append(value.removeprefix(" "))
                else:
                    fields.setdefault(name, value.removeprefix(" "))
            if time.monotonic() > deadline:
                stopped = True
                break
        capture.closed_by_server = not stopped
    capture.body = "".join(f"{line}\n" for line in capture.lines)
    return capture


def _event(fields: dict[str, str]) -> SseEvent:
    raw = fields.get("data", "")
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw
    return SseEvent(fields.get("id"), fields.get("event", ""), data, time.monotonic())
