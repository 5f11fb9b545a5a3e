"""Fixtures of the fault tests (helpers live in faultkit.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.client import OrchClient
from orchestrator.config import Config, ReplicaConfig
from orchestrator.engines import Engine
from orchestrator.server import ServerThread
from tests.orchestrator.faults.faultkit import Orch, ScriptBook
from tests.support import wait_until


@pytest.fixture
def scripted(
    request: pytest.FixtureRequest, serve: Callable[..., ServerThread]
) -> Iterator[ScriptBook]:
    """A :class:`ScriptBook` whose ``serve(config)`` runs orchestratord on scripted engines.

    Leak guard at teardown: the book's servers are stopped first (so nothing can
    still call an engine afterwards), then the test fails if a call was still in
    flight, a replica was called with its script empty, or an outcome was never
    consumed.
    """
    book = ScriptBook(test_name=request.node.nodeid, _serve=serve)
    yield book
    for server in book.servers:
        server.stop()
    wait_until(lambda: book.active == 0, timeout=5.0)
    book.verify()


@pytest.fixture
def orch(
    serve: Callable[..., ServerThread], make_config: Callable[..., Config]
) -> Iterator[Callable[..., Orch]]:
    """``orch(pool(...), ..., fallback_mode=..., engine_factory=...)``: start a server."""
    clients: list[OrchClient] = []

    def start(
        *pools: dict[str, Any],
        engine_factory: Callable[[ReplicaConfig], Engine] | None = None,
        **config_keys: Any,
    ) -> Orch:
        config = make_config(pools=list(pools), **config_keys)
        kwargs = {} if engine_factory is None else {"engine_factory": engine_factory}
        server = serve(config, **kwargs)
        client = OrchClient(server.url)
        clients.append(client)
        return Orch(server, client, client.create_session(ttl_seconds=600).session_id)

    yield start
    for client in clients:
        client.close()
