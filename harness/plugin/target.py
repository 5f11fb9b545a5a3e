"""The orchestrator under test: in-process orchestratord by default, or ``--orch-url``.

Every conformance suite talks to a :class:`Target`. By default each test gets
its own orchestratord (real uvicorn on an ephemeral loopback port, its own
SQLite file under the test's ``tmp_path``), so tests and xdist workers share no
file, port or setting. With ``--orch-url URL`` (and ``--orch-token``) every
suite runs against that live server instead; tests that must configure the
orchestrator themselves (a fault knob, a tiny queue) use :func:`orch_serve`,
which skips with a reason naming ``--orch-url`` there, never passes.

Like every module of this plugin it is loaded into *every* pytest run where
orchq is installed, so it imports only the standard library and pytest at
start-up; orchestratord is imported when a fixture first needs it.

This is the one place (with the other in-process fixtures) where the harness
reaches into ``orchestrator`` beyond its public client: it has to build and
start the reference server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.conformance import LIVE_TARGET_SKIP, NOT_VERIFIABLE_LIVE
from harness.plugin.persisted import guarded
from harness.plugin.settings import Setting, add, orchq_session

if TYPE_CHECKING:
    from orchestrator.client import AsyncOrchClient, OrchClient
    from orchestrator.config import Config
    from orchestrator.server import ServerThread

__all__ = [
    "LIVE_TARGET_SKIP",
    "NOT_VERIFIABLE_LIVE",
    "TARGET_ENV",
    "ServeFactory",
    "Target",
    "config_for",
]

TARGET_ENV = "ORCHQ_TARGET"
"""The environment variable naming the target URL, for pytest and every ``orchq`` command."""
URL = Setting(
    "url",
    "run the orchq suites against this live OrchQueue v1 server instead of an in-process "
    "orchestratord",
    env=TARGET_ENV,
)
TOKEN = Setting("token", "bearer token for --orch-url", env="ORCHQ_TOKEN")


@dataclass(frozen=True)
class Target:
    """One OrchQueue v1 server the harness talks to over HTTP.

    ``server`` is the in-process :class:`~orchestrator.server.ServerThread`
    (``None`` against ``--orch-url``); ``config`` is its configuration.
    """

    url: str
    token: str | None = None
    server: ServerThread | None = None
    config: Config | None = None

    @property
    def in_process(self) -> bool:
        return self.server is not None

    def client(self, **kwargs: Any) -> OrchClient:
        """A new blocking client with this target's token; close it (or use ``with``)."""
        from orchestrator.client import OrchClient

        kwargs.setdefault("token", self.token)
        return OrchClient(self.url, **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncOrchClient:
        """A new async client with this target's token; ``aclose`` it (or ``async with``)."""
        from orchestrator.client import AsyncOrchClient

        kwargs.setdefault("token", self.token)
        return AsyncOrchClient(self.url, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        """Headers for raw httpx calls (checks that need the wire, not the client)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


ServeFactory = Callable[..., Target]
"""``orch_serve(**config_overrides)`` -> a started in-process :class:`Target`."""


def config_for(database: str | Path, **overrides: Any) -> Config:
    """A validated config: the embedded default on ``database``, top-level keys overridden.

    Pools are plain mappings exactly as they appear in YAML, so a test states
    its orchestrator the way a user would write it.
    """
    from orchestrator.config import parse_config

    data: dict[str, Any] = {"database": str(database)}
    data.update(overrides)
    return parse_config(data, source="harness config")


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser, "orchq target", URL, metavar="URL")
    add(parser, "orchq target", TOKEN, metavar="TOKEN")


def live_url(config: pytest.Config) -> str | None:
    """The ``--orch-url`` value without a trailing slash, or ``None`` (in-process)."""
    url = orchq_session(config).value(URL)
    return url.rstrip("/") if url else None


def live_token(config: pytest.Config) -> str | None:
    """The ``--orch-token`` value, or ``None``."""
    return orchq_session(config).value(TOKEN)


@pytest.fixture
def orch_serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeFactory]:
    """Start in-process orchestratord servers with config overrides; all stop at teardown.

    ``orch_serve(pools=[{...}], auth_token="t")`` returns a started
    :class:`Target`. Each call gets its own database file. Keyword
    ``engine_factory=``, ``clock=`` and ``wrap_app=`` (an ASGI wrapper
    around the whole app, for mutants) are passed to the server.
    Against ``--orch-url`` the test is skipped with :data:`LIVE_TARGET_SKIP`.
    """
    if live_url(request.config) is not None:
        pytest.skip(LIVE_TARGET_SKIP)
    from orchestrator.server import ServerThread

    started: list[ServerThread] = []

    def start(config: Config | None = None, **overrides: Any) -> Target:
        server_kwargs = {
            k: overrides.pop(k) for k in ("engine_factory", "clock", "wrap_app") if k in overrides
        }
        if config is None:
            config = config_for(tmp_path / f"orchq-{len(started)}.db", **overrides)
        server = ServerThread(config, **server_kwargs).start()
        started.append(server)
        return Target(url=server.url, token=config.auth_token, server=server, config=config)

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def orch_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under test: ``--orch-url`` if given, else a fresh in-process default.

    A live target is shared by every test of the run, so the persisted-settings
    guard (:mod:`harness.plugin.persisted`) wraps the test that uses it.
    """
    url = live_url(request.config)
    if url is None:
        serve: ServeFactory = request.getfixturevalue("orch_serve")
        yield serve()
        return
    target = Target(url=url, token=live_token(request.config))
    with guarded(request, target):
        yield target


@pytest.fixture
def orch_client(orch_target: Target) -> Iterator[OrchClient]:
    """A blocking client on :func:`orch_target`, closed at teardown."""
    with orch_target.client() as client:
        yield client
