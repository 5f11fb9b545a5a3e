"""The harness's handle on a running engine server: fault rules in, generated tokens out.

:class:`EngineControl` talks to the server's ``/orchq/`` endpoints over HTTP
only, so it works the same whether the engine runs in this process
(:class:`~harness.engine.server.EngineThread`) or as a separate ``orchq engine
serve --model mock`` process beside any target. :meth:`EngineControl.replica_url`
gives the ``base_url`` of one replica as an orchestrator's configuration names
it; :func:`engine_pool` writes a whole pool of such replicas (the keys of spec
section 11).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from harness.engine.faults import FaultRule, RequestRecord
from harness.engine.mock import MOCK_MODEL

if TYPE_CHECKING:
    from harness.wire import Wire

__all__ = [
    "DEFAULT_SLOTS",
    "EngineControl",
    "ServeOnEngine",
    "default_pools",
    "engine_pool",
    "engine_replica",
    "rule",
    "slow_wire",
    "unique_tag",
]

ServeOnEngine = Callable[..., "Wire"]
"""The ``serve_on_engine`` fixture of the conformance suite:
``serve_on_engine(pool_keys=None, replicas=("r1", "r2"), slots=1, token_delay_ms=None,
**config) -> Wire``."""

SLOW_TOKEN_MS = 40
"""A slow replica's pace: with one slot, a long task holds it while others queue."""
HOLD_TOKENS = 1000
"""``max_tokens`` of a task meant to stay running for the whole check (it is cancelled)."""


def slow_wire(serve_on_engine: ServeOnEngine, **pool_keys: Any) -> Wire:
    """A target of one replica with one slot at :data:`SLOW_TOKEN_MS` a token."""
    return serve_on_engine(pool_keys, replicas=("r1",), slots=1, token_delay_ms=SLOW_TOKEN_MS)


def unique_tag(what: str = "engine check") -> str:
    """A prompt fragment only one test carries: its fault rules and ledger queries select it."""
    return f"[{what} {uuid.uuid4().hex[:12]}]"


def rule(
    faults: dict[str, Any] | None = None,
    *,
    replica: str | None = None,
    prompt_contains: str | None = None,
    times: int | None = None,
) -> dict[str, Any]:
    """One fault rule as the server takes it (see :mod:`harness.engine.faults`)."""
    return FaultRule(dict(faults or {}), replica, prompt_contains, times).to_json()


class EngineControl:
    """Fault rules and the request ledger of the engine server at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EngineControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def replica_url(self, replica_id: str) -> str:
        """The ``base_url`` under which the engine is replica ``replica_id``."""
        return f"{self.url}/replicas/{replica_id}"

    def reset(self) -> None:
        """No fault rules, an empty ledger."""
        self._http.post("/orchq/reset").raise_for_status()

    def set_faults(self, rules: Iterable[dict[str, Any]]) -> None:
        """Replace the fault rules (build each with :func:`rule`)."""
        self._http.put("/orchq/faults", json={"rules": list(rules)}).raise_for_status()

    def add_faults(self, rules: Iterable[dict[str, Any]]) -> None:
        """Append fault rules after those already set (later rules override earlier ones)."""
        response = self._http.get("/orchq/faults")
        response.raise_for_status()
        self.set_faults([*response.json()["rules"], *rules])

    def slow(self, replicas: Iterable[str], token_delay_ms: float) -> None:
        """Replicas that decode one token every ``token_delay_ms``: work that holds a slot."""
        self.add_faults(rule({"token_delay_ms": token_delay_ms}, replica=r) for r in replicas)

    def requests(self, prompt_contains: str | None = None) -> list[RequestRecord]:
        """The completion requests received, oldest first, optionally those of some prompts."""
        params = {} if prompt_contains is None else {"prompt_contains": prompt_contains}
        response = self._http.get("/orchq/requests", params=params)
        response.raise_for_status()
        return [RequestRecord(**item) for item in response.json()["requests"]]

    def generated(self, prompt_contains: str) -> int:
        """Tokens generated, over every request whose prompt contains ``prompt_contains``."""
        return sum(r.generated for r in self.requests(prompt_contains))

    def wait_finished(self, prompt_contains: str, timeout: float) -> list[RequestRecord]:
        """The prompt's requests once none is in progress, or as they are after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(prompt_contains)
            if all(r.finished for r in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


def engine_replica(engine: EngineControl | str, replica_id: str, **keys: Any) -> dict[str, Any]:
    """One ``openai`` replica served by ``engine`` (a control or its URL) under its own prefix.

    ``keys`` are further replica keys of spec section 11 (``slots``, ``warmup_ms``).
    """
    url = engine.url if isinstance(engine, EngineControl) else engine.rstrip("/")
    return {
        "replica_id": replica_id,
        "engine": "openai",
        "base_url": f"{url}/replicas/{replica_id}",
        "model": MOCK_MODEL,
        **keys,
    }


def engine_pool(
    engine: EngineControl | str,
    pool_id: str = "default",
    replicas: Iterable[str] = ("r1", "r2"),
    *,
    slots: int = 1,
    **keys: Any,
) -> dict[str, Any]:
    """A pool of ``openai`` replicas served by ``engine``, each under its own replica prefix."""
    return {
        "pool_id": pool_id,
        "replicas": [engine_replica(engine, replica, slots=slots) for replica in replicas],
        **keys,
    }


DEFAULT_SLOTS = 4
"""Slots of each replica of :func:`default_pools` (orchestratord's default)."""


def default_pools(engine: EngineControl | str) -> list[dict[str, Any]]:
    """The configuration of a target no check configures: pool ``default``, replicas ``r1``
    and ``r2`` on the harness's engine (the embedded default's shape, on an engine any
    implementation can talk to)."""
    return [engine_pool(engine, slots=DEFAULT_SLOTS)]
