"""Fixtures of the API tests: raw httpx clients against real servers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from orchestrator.server import ServerThread
from tests.orchestrator.wire import HttpFactory


@pytest.fixture
def connect() -> Iterator[HttpFactory]:
    """``connect(server, token=None)``: an httpx client on that server, closed at teardown."""
    clients: list[httpx.Client] = []

    def make(server: ServerThread, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=server.url, timeout=15.0, headers=headers)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def http(server: ServerThread, connect: HttpFactory) -> httpx.Client:
    """A raw client on the embedded-default server."""
    return connect(server)
