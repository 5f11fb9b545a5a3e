"""Fixtures: orchestratord over real HTTP on an ephemeral port, one database per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import OrchClient
from orchestrator.config import Config
from orchestrator.server import ServerThread
from tests.support import ServeFactory, config_with

os.environ.setdefault("PACT_DO_NOT_TRACK", "true")


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "orchq.db")


@pytest.fixture
def make_config(db_path: str) -> Callable[..., Config]:
    """``make_config(pools=[pool(...)], auth_token=...)``: a config on this test's database."""

    def make(**overrides: Any) -> Config:
        return config_with(db_path, **overrides)

    return make


@pytest.fixture
def serve(make_config: Callable[..., Config]) -> Iterator[ServeFactory]:
    """Start orchestratord servers (real uvicorn, loopback); all are stopped at teardown."""
    started: list[ServerThread] = []

    def start(config: Config | None = None, **kwargs: Any) -> ServerThread:
        server = ServerThread(config or make_config(), **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(serve: ServeFactory) -> ServerThread:
    """orchestratord on the embedded default config."""
    return serve()


@pytest.fixture
def client(server: ServerThread) -> Iterator[OrchClient]:
    with OrchClient(server.url) as c:
        yield c


@pytest.fixture
def session_id(client: OrchClient) -> str:
    return client.create_session(ttl_seconds=600).session_id
