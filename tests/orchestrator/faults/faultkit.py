"""Shared tools of the fault tests: a raw stream reader, stream checks, a scripted engine.

The scripted engine is the strict scripted-response pattern that seeds/000 asks
for: every replica has a queue of outcomes; a call with nothing left fails
loudly (naming the test) and is recorded, and the ``scripted`` fixture in
conftest.py fails the test at teardown on leftover outcomes, extra calls or
calls still in flight. A leaked retry can therefore never consume a response
meant for something else without a test going red.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx

from orchestrator.client import OrchClient
from orchestrator.config import Config, ReplicaConfig
from orchestrator.engines.base import (
    Engine,
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)
from orchestrator.engines.mock import request_key, token_at
from orchestrator.schemas import Task
from orchestrator.server import ServerThread
from tests.support import wait_until

TERMINAL_EVENTS = frozenset({"end", "error"})


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

    Ids 1..n without gap or repeat; at most one ``started``, before any token;
    token indices 0..k-1 without gap or repeat; exactly one terminal event, last.
    """
    assert events, "empty stream"
    assert [e.id for e in events] == list(range(1, len(events) + 1)), [e.id for e in events]
    terminals = [e for e in events if e.event in TERMINAL_EVENTS]
    assert len(terminals) == 1, f"expected exactly one terminal event, got {terminals}"
    assert events[-1] is terminals[0], f"events after the terminal one: {events}"
    started = [i for i, e in enumerate(events) if e.event == "started"]
    assert len(started) <= 1, f"several started events: {started}"
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


@dataclass(frozen=True)
class Outcome:
    """What one ``generate`` call of a scripted replica does."""

    kind: Literal["tokens", "rate_limited", "reset", "unavailable"]
    count: int = 0
    """Tokens produced (``tokens``: in total; ``reset``: before the reset)."""
    retry_after_s: float = 0.0
    token_delay_s: float = 0.0

    def __str__(self) -> str:
        if self.kind == "rate_limited":
            return f"429(retry_after={self.retry_after_s}s)"
        if self.kind == "tokens" and self.count < 0:
            return "tokens(all)"
        return f"{self.kind}({self.count})"


def tokens(count: int | None = None, *, token_delay_s: float = 0.0) -> Outcome:
    """Stream the request's deterministic tokens (all of ``max_tokens`` when count is None)."""
    return Outcome("tokens", count=-1 if count is None else count, token_delay_s=token_delay_s)


def rate_limited(retry_after_s: float) -> Outcome:
    return Outcome("rate_limited", retry_after_s=retry_after_s)


def reset_after(count: int) -> Outcome:
    return Outcome("reset", count=count)


def unavailable() -> Outcome:
    return Outcome("unavailable")


@dataclass(frozen=True)
class Call:
    replica_id: str
    outcome: Outcome | None
    """None for a call that found the script empty."""
    at: float
    seed: int


class ScriptExhausted(AssertionError):
    pass


@dataclass
class ScriptBook:
    """Per-replica outcome queues for one test; thread-safe (engines run on the server loop)."""

    test_name: str
    scripts: dict[str, deque[Outcome]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    extra_calls: list[str] = field(default_factory=list)
    active: int = 0
    servers: list[ServerThread] = field(default_factory=list)
    unreachable: set[str] = field(default_factory=set)
    """Replicas whose warm-up (and health probe) fails with EngineUnavailable."""
    probes: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _serve: Callable[..., ServerThread] | None = field(default=None, repr=False)

    def script(self, replica_id: str, *outcomes: Outcome) -> ScriptBook:
        with self._lock:
            self.scripts.setdefault(replica_id, deque()).extend(outcomes)
        return self

    def factory(self, replica: ReplicaConfig) -> Engine:
        with self._lock:
            self.scripts.setdefault(replica.replica_id, deque())
        return ScriptedEngine(self, replica.replica_id)

    def serve(self, config: Config) -> ServerThread:
        """Start orchestratord with every replica scripted by this book."""
        assert self._serve is not None
        server = self._serve(config, engine_factory=self.factory)
        self.servers.append(server)
        return server

    def take(self, replica_id: str, seed: int) -> Outcome:
        with self._lock:
            queue = self.scripts.setdefault(replica_id, deque())
            number = sum(1 for c in self.calls if c.replica_id == replica_id) + 1
            if not queue:
                message = (
                    f"[{self.test_name}] scripted engine {replica_id!r} has no outcome left "
                    f"for call #{number} (calls so far: {self.call_log()})"
                )
                self.extra_calls.append(message)
                self.calls.append(Call(replica_id, None, time.monotonic(), seed))
                raise ScriptExhausted(message)
            outcome = queue.popleft()
            self.calls.append(Call(replica_id, outcome, time.monotonic(), seed))
            return outcome

    def call_log(self) -> list[tuple[str, str]]:
        return [(c.replica_id, str(c.outcome)) for c in self.calls]

    def leftovers(self) -> dict[str, list[str]]:
        with self._lock:
            return {rid: [str(o) for o in q] for rid, q in self.scripts.items() if q}

    def verify(self) -> None:
        """The leak guard: no call in flight, no extra call, no outcome left unconsumed."""
        problems = []
        if self.active:
            problems.append(f"{self.active} engine call(s) still in flight")
        problems.extend(self.extra_calls)
        leftovers = self.leftovers()
        if leftovers:
            problems.append(f"unconsumed scripted outcomes: {leftovers}")
        assert not problems, f"[{self.test_name}] scripted engine leak: " + "; ".join(problems)


class ScriptedEngine:
    """An Engine whose every ``generate`` call follows the next scripted outcome."""

    def __init__(self, book: ScriptBook, replica_id: str) -> None:
        self._book = book
        self._replica_id = replica_id

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def version(self) -> str:
        return "scripted-1"

    async def warmup(self) -> None:
        book = self._book
        with book._lock:
            book.probes.append((self._replica_id, time.monotonic()))
            down = self._replica_id in book.unreachable
        if down:
            raise EngineUnavailable(f"scripted: {self._replica_id} unreachable")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        book = self._book
        with book._lock:
            book.active += 1
        try:
            outcome = book.take(self._replica_id, request.seed)
            if outcome.kind == "rate_limited":
                raise EngineRateLimited(
                    f"scripted 429 from {self._replica_id}", retry_after_s=outcome.retry_after_s
                )
            if outcome.kind == "unavailable":
                raise EngineUnavailable(f"scripted: {self._replica_id} unreachable")
            key = request_key(request)
            count = request.max_tokens if outcome.count < 0 else outcome.count
            for index in range(min(count, request.max_tokens)):
                await asyncio.sleep(outcome.token_delay_s)
                yield token_at(key, index)
            if outcome.kind == "reset":
                raise EngineReset(f"scripted reset of {self._replica_id} after {count} tokens")
        finally:
            with book._lock:
                book.active -= 1

    async def aclose(self) -> None:
        return None


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
