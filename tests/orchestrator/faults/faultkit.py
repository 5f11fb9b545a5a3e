"""Shared tools of the fault tests: a raw stream reader, stream checks, a scripted engine.

The scripted engine is the harness's strict one (:mod:`harness.plugin.scriptbook`):
every replica has a queue of outcomes; a call with nothing left fails loudly
(naming the test) and is recorded, and the ``scripted`` fixture in conftest.py
fails the test at teardown on leftover outcomes, extra calls or calls still in
flight. A leaked retry can therefore never consume a response meant for
something else without a test going red. Here it only gains a ``serve`` on
the fault tests' own server fixture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from harness.plugin.scriptbook import (
    Call,
    Outcome,
    ScriptedEngine,
    ScriptExhausted,
    rate_limited,
    reset_after,
    stall,
    tokens,
    unavailable,
)
from harness.plugin.scriptbook import ScriptBook as HarnessScriptBook
from orchestrator.client import OrchClient
from orchestrator.config import Config
from orchestrator.engines.base import GenerationRequest, Token
from orchestrator.engines.mock import request_key, token_at
from orchestrator.schemas import Task
from orchestrator.server import ServerThread
from orchestrator.vocabulary import CLOSING_EVENTS
from tests.support import wait_until

__all__ = [
    "Call",
    "Orch",
    "Outcome",
    "RawEvent",
    "Run",
    "ScriptBook",
    "ScriptExhausted",
    "ScriptedEngine",
    "rate_limited",
    "reset_after",
    "stall",
    "tokens",
    "unavailable",
]


# ---------------------------------------------------------------- raw stream


@dataclass(frozen=True)
class RawEvent:
    id: int
    event: str
    data: dict[str, Any]


def read_stream(base_url: str, task_id: str, *, timeout: float = 30.0) -> list[RawEvent]:
    """Every event of a task's stream, read to the server's EOF (not to the first terminal).

    The typed client stops at the first ``end``/``error``; reading on until the
    server closes is what shows a second terminal event or a late token.
    """
    events: list[RawEvent] = []
    fields: dict[str, str] = {}
    data: list[str] = []
    with (
        httpx.Client(timeout=timeout) as http,
        http.stream("GET", f"{base_url}/v1/tasks/{task_id}/stream") as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if data:
                    events.append(
                        RawEvent(int(fields["id"]), fields["event"], json.loads("\n".join(data)))
                    )
                fields, data = {}, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
    assert not data, f"stream of {task_id} ended inside an event: {data!r}"
    return events


def check_stream(events: list[RawEvent]) -> RawEvent:
    """The stream invariants every task must keep, whatever went wrong; returns the terminal.

    Ids 1..n without gap or repeat; at most one ``started``, before any token, and
    exactly one if the task completed; token indices 0..k-1 without gap or repeat;
    exactly one terminal event, last.
    """
    assert events, "empty stream"
    assert [e.id for e in events] == list(range(1, len(events) + 1)), [e.id for e in events]
    terminals = [e for e in events if e.event in CLOSING_EVENTS]
    assert len(terminals) == 1, f"expected exactly one terminal event, got {terminals}"
    assert events[-1] is terminals[0], f"events after the terminal one: {events}"
    started = [i for i, e in enumerate(events) if e.event == "started"]
    assert len(started) <= 1, f"several started events: {started}"
    if terminals[0].event == "end":
        assert started, f"a completed task without its started event: {events}"
    token_positions = [i for i, e in enumerate(events) if e.event == "token"]
    if token_positions:
        assert started and started[0] < token_positions[0], "token before started"
    indices = [e.data["index"] for e in events if e.event == "token"]
    assert indices == list(range(len(indices))), f"token indices not contiguous: {indices}"
    return terminals[0]


def token_pairs(events: list[RawEvent]) -> list[tuple[int, str, int]]:
    return [
        (e.data["index"], e.data["text"], e.data["token_id"]) for e in events if e.event == "token"
    ]


def mock_tokens(
    prompt: str, seed: int, count: int, *, temperature: float = 1.0, top_p: float = 1.0
) -> list[Token]:
    """The tokens a healthy mock replica produces for a request (sampler profile v1)."""
    key = request_key(GenerationRequest(prompt, seed, count, temperature, top_p, "v1", "strict"))
    return [token_at(key, i) for i in range(count)]


# ---------------------------------------------------------------- polling


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def wait_task(
    client: OrchClient, task_id: str, predicate: Callable[[Task], bool], timeout: float = 10.0
) -> Task:
    """Poll ``GET /v1/tasks/{id}`` until ``predicate`` holds; the last view is returned."""
    seen: list[Task] = []

    def check() -> bool:
        seen.append(client.get_task(task_id))
        del seen[:-1]
        return predicate(seen[-1])

    wait_until(check, timeout=timeout, interval=0.005)
    return seen[-1]


def in_flight(client: OrchClient) -> dict[str, int]:
    return {
        f"{p.pool_id}/{r.replica_id}": r.in_flight for p in client.list_pools() for r in p.replicas
    }


def assert_slots_free(client: OrchClient, timeout: float = 5.0) -> None:
    """Every replica of every pool gets back to ``in_flight == 0``."""
    wait_until(lambda: not any(in_flight(client).values()), timeout=timeout)


def replica_states(client: OrchClient, pool_id: str = "default") -> dict[str, str]:
    return {r.replica_id: r.state for r in client.get_pool(pool_id).replicas}


def attempt_rows(task: Task) -> list[tuple[int, str, str, str | None]]:
    return [(a.attempt, a.replica_id, a.state, a.error_kind) for a in task.attempts]


# ---------------------------------------------------------------- scripted engine


@dataclass
class ScriptBook(HarnessScriptBook):
    """The harness's strict scripted engine, started through the fault tests' ``serve``."""

    servers: list[ServerThread] = field(default_factory=list)
    _serve: Callable[..., ServerThread] | None = field(default=None, repr=False)

    def serve(self, config: Config) -> ServerThread:
        """Start orchestratord with every replica scripted by this book."""
        assert self._serve is not None
        server = self._serve(config, engine_factory=self.factory)
        self.servers.append(server)
        return server


@dataclass(frozen=True)
class Run:
    """A finished task: its whole raw stream, the terminal event and ``GET /v1/tasks/{id}``."""

    task_id: str
    events: list[RawEvent]
    terminal: RawEvent
    task: Task

    @property
    def tokens(self) -> list[tuple[int, str, int]]:
        return token_pairs(self.events)

    @property
    def kinds(self) -> list[str]:
        return [e.event for e in self.events]


@dataclass
class Orch:
    """One running orchestratord, a client to it and an open session."""

    server: ServerThread
    client: OrchClient
    session_id: str

    @property
    def url(self) -> str:
        return self.server.url

    def submit(self, prompt: str = "fault tolerance", **kwargs: Any) -> str:
        return self.client.submit_task(self.session_id, prompt, **kwargs).task_id

    def finish(self, task_id: str) -> Run:
        """Read the task's stream to EOF, check its invariants, then fetch the task."""
        events = read_stream(self.url, task_id)
        terminal = check_stream(events)
        return Run(task_id, events, terminal, self.client.get_task(task_id))

    def run(self, prompt: str = "fault tolerance", **kwargs: Any) -> Run:
        return self.finish(self.submit(prompt, **kwargs))
