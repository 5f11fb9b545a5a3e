"""Raw SSE readers for tests that watch streams across a crash or a fault.

They parse the wire themselves (no client, no reconnection), so a test sees
exactly which event ids reached a reader and when its stream ended.
"""

from __future__ import annotations

import threading

import httpx


class StreamReader(threading.Thread):
    """Reads one task's stream until it ends or the server goes away; keeps what it saw."""

    def __init__(self, url: str, task_id: str) -> None:
        super().__init__(name=f"reader-{task_id}", daemon=True)
        self.url, self.task_id = url, task_id
        self.seen: dict[int, tuple[str, str]] = {}
        """Event id -> (event, data), in the order the reader received them."""
        self.ended = False
        """The response ended normally (not cut by a crash)."""

    def run(self) -> None:
        fields: dict[str, str] = {}
        try:
            with httpx.stream("GET", f"{self.url}/v1/tasks/{self.task_id}/stream", timeout=60) as r:
                for line in r.iter_lines():
                    if line:
                        name, _, value = line.partition(": ")
                        fields[name] = value
                    elif "id" in fields:
                        self.seen[int(fields["id"])] = (fields["event"], fields["data"])
                        fields = {}
                    else:
                        fields = {}
            self.ended = True
        except httpx.TransportError:
            pass  # the server was killed

    def events(self) -> list[str]:
        return [event for _, (event, _) in sorted(self.seen.items())]


def raw_events(
    url: str, task_id: str, last_event_id: int | None = None
) -> list[tuple[int, str, str]]:
    """A finished task's whole stream as ``(id, event, data)``, after ``last_event_id``."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    response = httpx.get(f"{url}/v1/tasks/{task_id}/stream", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    events = []
    for block in response.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            events.append((int(fields["id"]), fields["event"], fields["data"]))
    return events
