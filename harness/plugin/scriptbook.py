"""The strict scripted engine: per-replica queues of engine outcomes that fail loudly.

A call that belongs to another test (a timed-out scenario whose retry runs on
into the next test) must not consume the next test's responses unnoticed
(docs/design/test-isolation.md). A :class:`ScriptBook` makes that impossible to miss:

- every replica has its own queue of :class:`Outcome`; a call with nothing
  left raises :class:`ScriptExhausted` naming the *owning* test and is
  recorded, so the owner's teardown fails too;
- :meth:`ScriptBook.verify` (run by the ``orch_scripted_engine`` fixture at
  teardown, after the servers stopped) fails the owning test when a call is
  still in flight, a call found the queue empty, or an outcome was never
  consumed.

The same book drives orchestratord in-process (``engine_factory=book.factory``,
a :class:`ScriptedEngine` per replica) or the ``openai`` engine's HTTP API
through respx (:meth:`ScriptBook.openai_side_effect`, :meth:`ScriptBook.mock_openai`):
respx's own list ``side_effect`` runs out with an unhelpful ``StopIteration``
error and its ``assert_all_called`` only checks each route was hit once.

This module imports orchestratord and httpx: the pytest plugin
(:mod:`harness.plugin.scripted`) imports it lazily.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
import pytest

from harness.plugin.target import ServeFactory, Target
from orchestrator.config import ReplicaConfig
from orchestrator.engines.base import (
    Engine,
    EngineRateLimited,
    EngineReset,
    EngineUnavailable,
    GenerationRequest,
    Token,
)
from orchestrator.engines.mock import request_key, token_at

if TYPE_CHECKING:
    import respx

__all__ = [
    "Call",
    "Outcome",
    "ScriptBook",
    "ScriptExhausted",
    "ScriptedEngine",
    "ServedScriptBook",
    "rate_limited",
    "reset_after",
    "stall",
    "tokens",
    "unavailable",
]

OutcomeKind = Literal["tokens", "rate_limited", "reset", "unavailable", "stall"]

STALL_S = 3600.0
"""How long a stalled engine waits: for ever, as far as any test is concerned."""


@dataclass(frozen=True)
class Outcome:
    """What one ``generate`` call (or one ``POST /v1/completions``) of a scripted replica does."""

    kind: OutcomeKind
    count: int = 0
    """Tokens produced (``tokens``: in total, -1 for all; ``reset``/``stall``: before failing)."""
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
    """The engine answers 429 with this ``Retry-After``."""
    return Outcome("rate_limited", retry_after_s=retry_after_s)


def reset_after(count: int) -> Outcome:
    """``count`` tokens, then the replica dies (``EngineReset`` / a broken stream)."""
    return Outcome("reset", count=count)


def stall(after: int = 0) -> Outcome:
    """``after`` tokens, then the engine hangs until the runtime cancels it."""
    return Outcome("stall", count=after)


def unavailable() -> Outcome:
    """The engine refuses before generating anything (unreachable / HTTP 503)."""
    return Outcome("unavailable")


@dataclass(frozen=True)
class Call:
    replica_id: str
    outcome: Outcome | None
    """None for a call that found the script empty."""
    at: float
    seed: int


class ScriptExhausted(AssertionError):
    """A scripted replica was called with nothing left in its queue."""


@dataclass
class ScriptBook:
    """Per-replica outcome queues thread-safe (engines run on a server loop)."""

    test_name: str
    scripts: dict[str, deque[Outcome]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    extra_calls: list[str] = field(default_factory=list)
    active: int = 0
    """Engine calls (or mocked HTTP streams) started and not finished."""
    unreachable: set[str] = field(default_factory=set)
    """Replicas whose warm-up (and health probe) fails with EngineUnavailable."""
    probes: list[tuple[str, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def script(self, replica_id: str, *outcomes: Outcome) -> ScriptBook:
        """Append outcomes to a replica's queue (chainable)."""
        with self._lock:
            self.scripts.setdefault(replica_id, deque()).extend(outcomes)
        return self

    def factory(self, replica: ReplicaConfig) -> Engine:
        """An ``engine_factory`` for orchestratord: every replica becomes scripted."""
        with self._lock:
            self.scripts.setdefault(replica.replica_id, deque())
        return ScriptedEngine(self, replica.replica_id)

    def take(self, replica_id: str, seed: int) -> Outcome:
        """The replica's next outcome; an empty queue raises (and is recorded for verify)."""
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

    def _enter(self) -> None:
        with self._lock:
            self.active += 1

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def problems(self) -> list[str]:
        """What :meth:`verify` would complain about (empty when the book is clean)."""
        found = []
        if self.active:
            found.append(f"{self.active} engine call(s) still in flight")
        found.extend(self.extra_calls)
        leftovers = self.leftovers()
        if leftovers:
            found.append(f"unconsumed scripted outcomes: {leftovers}")
        return found

    def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for in-flight calls to finish (a stopped server ends them)."""
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)

    def verify(self) -> None:
        """The leak guard: no call in flight, no extra call, no outcome left unconsumed."""
        problems = self.problems()
        assert not problems, f"[{self.test_name}] scripted engine leak: " + "; ".join(problems)

    # ------------------------------------------------------------ respx (openai engine)

    def openai_side_effect(self, replica_id: str) -> Callable[[httpx.Request], httpx.Response]:
        """A respx side effect for ``POST /v1/completions`` of an OpenAI-compatible server.

        Each call takes the replica's next outcome: ``tokens`` streams vLLM-shaped
        chunks (the mock engine's deterministic texts and ids) then ``[DONE]``;
        ``rate_limited`` answers 429 with ``Retry-After``; ``unavailable`` 503;
        ``reset`` breaks the stream after N chunks (no ``[DONE]``); ``stall``
        hangs after N chunks. An empty queue raises :class:`ScriptExhausted`.
        """

        def side_effect(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            generation = GenerationRequest(
                str(body.get("prompt", "")),
                int(body.get("seed") or 0),
                int(body.get("max_tokens", 16)),
                float(body.get("temperature", 1.0)),
                float(body.get("top_p", 1.0)),
                "v1",
                "strict",
            )
            outcome = self.take(replica_id, generation.seed)
            if outcome.kind == "rate_limited":
                return httpx.Response(
                    429,
                    headers={"Retry-After": _retry_after_header(outcome.retry_after_s)},
                    json={"error": {"message": "scripted rate limit"}},
                )
            if outcome.kind == "unavailable":
                return httpx.Response(503, json={"error": {"message": "scripted unavailable"}})
            return httpx.Response(
                200,
                headers={"Content-Type": "text/event-stream"},
                content=self._openai_stream(generation, outcome),
            )

        return side_effect

    async def _openai_stream(
        self, request: GenerationRequest, outcome: Outcome
    ) -> AsyncIterator[bytes]:
        self._enter()
        try:
            key = request_key(request)
            count = request.max_tokens if outcome.count < 0 else outcome.count
            count = min(count, request.max_tokens)
            for index in range(count):
                await asyncio.sleep(outcome.token_delay_s)
                token = token_at(key, index)
                last = outcome.kind == "tokens" and index == count - 1
                choice = {
                    "index": 0,
                    "text": token.text,
                    "token_ids": [token.token_id],
                    "finish_reason": ("length" if count >= request.max_tokens else "stop")
                    if last
                    else None,
                }
                yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
            if outcome.kind == "stall":
                await asyncio.sleep(STALL_S)
            if outcome.kind == "tokens":
                yield b"data: [DONE]\n\n"
        finally:
            self._leave()

    def openai_models_side_effect(
        self, replica_id: str
    ) -> Callable[[httpx.Request], httpx.Response]:
        """``GET /v1/models`` (the openai engine's warm-up): 503 while the replica is down."""

        def side_effect(request: httpx.Request) -> httpx.Response:
            with self._lock:
                self.probes.append((replica_id, time.monotonic()))
                down = replica_id in self.unreachable
            if down:
                return httpx.Response(503, json={"error": {"message": "scripted unreachable"}})
            return httpx.Response(200, json={"object": "list", "data": [{"id": "scripted"}]})

        return side_effect

    def mock_openai(self, router: respx.MockRouter, base_url: str, replica_id: str) -> None:
        """Route an OpenAI-compatible server at ``base_url`` to this book's ``replica_id`` queue."""
        root = base_url.rstrip("/").removesuffix("/v1")
        self.script(replica_id)
        router.post(f"{root}/v1/completions").mock(side_effect=self.openai_side_effect(replica_id))
        router.get(f"{root}/v1/models").mock(side_effect=self.openai_models_side_effect(replica_id))


def _retry_after_header(seconds: float) -> str:
    whole = int(seconds)
    return str(whole) if whole == seconds else str(seconds)


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
        book._enter()
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
            if outcome.kind == "stall":
                await asyncio.sleep(STALL_S)
            if outcome.kind == "reset":
                raise EngineReset(f"scripted reset of {self._replica_id} after {count} tokens")
        finally:
            book._leave()

    async def aclose(self) -> None:
        return None


@dataclass
class ServedScriptBook(ScriptBook):
    """A book that starts in-process orchestratord servers on its engines
    (``orch_scripted_engine``)."""

    targets: list[Target] = field(default_factory=list)
    _request: pytest.FixtureRequest | None = field(default=None, repr=False)

    def serve(self, *, replace_engines: bool = True, **config_overrides: Any) -> Target:
        """``orch_serve(engine_factory=self.factory, **config_overrides)``: a started target.

        ``replace_engines=False`` keeps the configured engines (an ``openai``
        replica whose HTTP API this book answers through :meth:`mock_openai`).
        """
        assert self._request is not None, "serve() needs the orch_scripted_engine fixture"
        orch_serve: ServeFactory = self._request.getfixturevalue("orch_serve")
        if replace_engines:
            config_overrides["engine_factory"] = self.factory
        target = orch_serve(**config_overrides)
        self.targets.append(target)
        return target

    def stop(self) -> None:
        """Stop every server started by :meth:`serve` (their fixture would do it later)."""
        for target in reversed(self.targets):
            if target.server is not None:
                target.server.stop()
