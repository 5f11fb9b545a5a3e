"""The implementation under test: in-process orchestratord, ``--orch-url``, or ``--orch-serve-cmd``.

Every conformance suite talks to a :class:`Target`, one of three kinds:

- **in-process** (the default): each test gets its own orchestratord (real
  uvicorn on an ephemeral loopback port, its own SQLite file under the test's
  ``tmp_path``), so tests and xdist workers share no file, port or setting.
- **live** (``--orch-url URL``, ``--orch-token``): every suite runs against that
  server. Checks that need a configuration of their own skip there with a reason
  naming ``--orch-url`` (:data:`LIVE_TARGET_SKIP`), never pass.
- **managed** (``--orch-serve-cmd "CMD"``): the harness starts the
  implementation itself (:mod:`harness.managed`): for each configuration a
  check needs it writes a configuration file (spec section 11), runs CMD with
  ``{port}``, ``{config}`` and ``{state_dir}`` filled in, and waits until the
  server is ready. Replicas are served by the harness's engine, run as a process
  of its own. Nothing is "not verifiable" in this mode.

``orch_target`` is a fresh in-process server per test, the live server, or (managed)
one server per worker with the configuration no check chose, shared like a live
one. ``orch_serve(**config)`` starts a server with a configuration of its own:
in-process, or through CMD. ``orch_process(**config)`` always starts a process,
which a test can kill (SIGKILL), terminate (SIGTERM) and restart on the same
state: through CMD, or, in-process runs, through ``orchq serve`` of this
installation (:data:`~harness.managed.command.EMBEDDED_SERVE_CMD`).

Every server a test starts is stopped at its teardown (a process is killed), every
process reaped at the end of the session at the latest (also after a failure or an
interruption).

Like every module of this plugin it is loaded into *every* pytest run where
orchq is installed, so it imports only the standard library and pytest at
start-up; orchestratord is imported when a fixture first needs it. This is the
one place (with the other in-process fixtures) where the harness reaches into
``orchestrator`` beyond its public client: it has to build and start the
reference server.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from harness.conformance import (
    CORE_PROFILE,
    LIVE_TARGET_SKIP,
    NOT_VERIFIABLE_LIVE,
    REFERENCE_CODE,
)
from harness.plugin.persisted import guarded
from harness.plugin.settings import Setting, add, orchq_session

if TYPE_CHECKING:
    from harness.managed.command import ServeCommand
    from harness.managed.server import ManagedServer
    from orchestrator.client import AsyncOrchClient, OrchClient
    from orchestrator.config import Config
    from orchestrator.server import ServerThread

__all__ = [
    "IN_PROCESS_ONLY_KEYWORDS",
    "LIVE_TARGET_SKIP",
    "NOT_VERIFIABLE_LIVE",
    "SERVE_CMD_ENV",
    "TARGET_ENV",
    "Mode",
    "ServeFactory",
    "Target",
    "config_for",
    "target_mode",
]

TARGET_ENV = "ORCHQ_TARGET"
"""The environment variable naming the target URL, for pytest and every ``orchq`` command."""
SERVE_CMD_ENV = "ORCHQ_SERVE_CMD"
"""The environment variable naming the serve command of a harness-managed target."""
URL = Setting(
    "url",
    "run the orchq suites against this live OrchQueue v1 server instead of an in-process "
    "orchestratord",
    env=TARGET_ENV,
)
TOKEN = Setting("token", "bearer token for --orch-url", env="ORCHQ_TOKEN")
SERVE_CMD = Setting(
    "serve_cmd",
    "start the implementation under test with this shell command, once for each "
    "configuration a check needs: {port}, {config} (the configuration file the harness "
    "writes) and {state_dir} (kept across restarts) are filled in",
    env=SERVE_CMD_ENV,
)
SERVE_TIMEOUT = Setting(
    "serve_timeout",
    "seconds a target started with --orch-serve-cmd may take to become ready (default 60)",
)

PROFILE = Setting(
    "profile",
    "the profiles of the spec the target implements: 'all' (the default) or 'core' (no "
    "optional profile: the checks of section 12, runs, are skipped as not claimed)",
    env="ORCHQ_PROFILE",
)

WEBHOOK_BIND = Setting(
    "webhook_bind",
    "the address orch_webhook_receiver listens on (default 127.0.0.1; 0.0.0.0 for a remote "
    "--orch-url target to reach it)",
    env="ORCHQ_WEBHOOK_BIND",
)
WEBHOOK_HOST = Setting(
    "webhook_host",
    "the host name or address of orch_webhook_receiver in the URL the target is given "
    "(default: the bind address, or this machine's name when it binds 0.0.0.0)",
    env="ORCHQ_WEBHOOK_HOST",
)
IN_PROCESS_ONLY_KEYWORDS = ("engine_factory", "clock", "wrap_app")
"""``orch_serve`` keywords that reach into an in-process orchestratord (mutants, fake clocks)."""

Mode = Literal["in-process", "live", "managed"]


@dataclass(frozen=True)
class Target:
    """One OrchQueue v1 server the harness talks to over HTTP.

    ``server`` is the in-process :class:`~orchestrator.server.ServerThread`
    (``None`` otherwise), ``config`` its configuration. ``process`` is the
    :class:`~harness.managed.server.ManagedServer` of a target in a process the
    harness started: :meth:`kill`, :meth:`terminate` and :meth:`restart` work on it.
    """

    url: str
    token: str | None = None
    server: ServerThread | None = None
    config: Config | None = None
    process: ManagedServer | None = None

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

    def _managed(self) -> ManagedServer:
        if self.process is None:
            raise RuntimeError(
                f"the target at {self.url} is not a process the harness started (orch_process)"
            )
        return self.process

    def kill(self) -> None:
        """SIGKILL the target's process (and all it started): a crash, nothing flushed."""
        self._managed().kill()

    def terminate(self) -> int | None:
        """SIGTERM the target's process and wait until it exits; returns its exit status."""
        return self._managed().terminate()

    def restart(self) -> Target:
        """Start the target again on the same configuration and state (terminating it first
        if it still runs); returns the target at its possibly new URL, once ready."""
        process = self._managed()
        return dataclasses.replace(self, url=process.restart())


ServeFactory = Callable[..., Target]
"""``orch_serve(*, ready=None, **config)`` -> a started :class:`Target` with that configuration."""


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
    add(parser, "orchq target", SERVE_CMD, metavar="CMD")
    add(parser, "orchq target", SERVE_TIMEOUT, metavar="SECONDS")
    add(parser, "orchq target", PROFILE, choices=["all", CORE_PROFILE])
    add(parser, "orchq target", WEBHOOK_BIND, metavar="ADDRESS")
    add(parser, "orchq target", WEBHOOK_HOST, metavar="HOST")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of in-process-only checks in every process, the xdist controller
    included (syrupy imports snapshot modules there to report on them)."""
    config.addinivalue_line(
        "markers",
        f"{REFERENCE_CODE}: drives orchestratord's own code in this process rather than the "
        "target; not run when the harness starts the target (--orch-serve-cmd)",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """No process the harness started outlives the session (fixtures stop them first)."""
    from harness.managed.children import reap_all

    reap_all()


def live_url(config: pytest.Config) -> str | None:
    """The ``--orch-url`` value without a trailing slash, or ``None`` (in-process)."""
    url = orchq_session(config).value(URL)
    return url.rstrip("/") if url else None


def live_token(config: pytest.Config) -> str | None:
    """The ``--orch-token`` value, or ``None``."""
    return orchq_session(config).value(TOKEN)


def webhook_address(config: pytest.Config) -> tuple[str, str | None]:
    """``(bind address, host in the URL or None)`` of ``orch_webhook_receiver``."""
    session = orchq_session(config)
    return session.value(WEBHOOK_BIND) or "127.0.0.1", session.value(WEBHOOK_HOST)


def target_mode(config: pytest.Config) -> Mode:
    """``live`` (``--orch-url``), ``managed`` (``--orch-serve-cmd``) or ``in-process``."""
    session = orchq_session(config)
    if session.value(URL):
        return "live"
    if session.value(SERVE_CMD):
        return "managed"
    return "in-process"


def claimed_profiles(config: pytest.Config) -> frozenset[str]:
    """The optional profiles the target claims (``--orch-profile``): all unless ``core``."""
    from harness.conformance import OPTIONAL_PROFILES

    value = orchq_session(config).value(PROFILE)
    return frozenset() if value == CORE_PROFILE else frozenset(OPTIONAL_PROFILES)


def serve_command(config: pytest.Config) -> ServeCommand:
    """The run's serve command: ``--orch-serve-cmd``, else ``orchq serve`` of this installation.

    A command the harness cannot use fails the test asking for it, in one line.
    """
    from harness.managed.command import CommandError, ServeCommand, embedded_command

    session = orchq_session(config)
    if session.value(URL) and session.value(SERVE_CMD):
        pytest.fail(
            "--orch-url and --orch-serve-cmd exclude each other: certify a running server or "
            "let the harness start one",
            pytrace=False,
        )
    template = session.value(SERVE_CMD)
    if template is None:
        return embedded_command()
    try:
        return ServeCommand.parse(template)
    except CommandError as exc:
        pytest.fail(str(exc), pytrace=False)


def serve_timeout(config: pytest.Config) -> float:
    from harness.managed.server import STARTUP_TIMEOUT_S

    value = orchq_session(config).value(SERVE_TIMEOUT)
    if value is None:
        return STARTUP_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        pytest.fail(f"--orch-serve-timeout: expected a number of seconds > 0, got {value!r}")
    return seconds


# ---------------------------------------------------------------- starting targets


class Launcher:
    """Starts the targets of one test (or one worker) and stops them all in :meth:`close`."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request = request
        self.folder = folder
        self.threads: list[ServerThread] = []
        self.processes: list[ManagedServer] = []

    def engine_url(self) -> str:
        """The URL of the harness's engine (started once per worker on first use)."""
        server = self.request.getfixturevalue("_orch_engine_server")
        return str(server.url)

    def thread(
        self, config: Config | None, ready: Iterable[str] | None, **overrides: Any
    ) -> Target:
        """An in-process orchestratord, ready."""
        from harness.managed.server import ServeError, wait_ready
        from orchestrator.server import ServerThread

        server_kwargs = {k: overrides.pop(k) for k in IN_PROCESS_ONLY_KEYWORDS if k in overrides}
        if config is None:
            config = config_for(self.folder / f"orchq-{len(self.threads)}.db", **overrides)
        server = ServerThread(config, **server_kwargs).start()
        self.threads.append(server)
        target = Target(url=server.url, token=config.auth_token, server=server, config=config)
        ok, why = wait_ready(
            target.url,
            target.token,
            ready_pools=ready,
            configured_pools=[p.pool_id for p in config.pools],
            timeout=serve_timeout(self.request.config),
        )
        if not ok:
            raise ServeError(f"the in-process orchestratord at {target.url} is not ready: {why}")
        return target

    def process(
        self,
        command: ServeCommand,
        ready: Iterable[str] | None,
        **overrides: Any,
    ) -> Target:
        """A target in a process of its own started by ``command``, ready."""
        from harness.managed.server import ManagedServer

        given = [k for k in IN_PROCESS_ONLY_KEYWORDS if k in overrides]
        if given:
            pytest.fail(
                f"{', '.join(given)}= reach into an in-process orchestratord; this target is a "
                f"process started by {command.template!r}",
                pytrace=False,
            )
        document = dict(overrides)
        if "pools" not in document:
            from harness.engine.control import default_pools

            document["pools"] = default_pools(self.engine_url())
        process = ManagedServer(
            command,
            document,
            self.folder / f"target-{len(self.processes)}",
            ready_pools=ready,
            startup_timeout=serve_timeout(self.request.config),
            cwd=Path(self.request.config.invocation_params.dir),
        )
        self.processes.append(process)
        url = process.start()
        return Target(url=url, token=process.token, process=process)

    def close(self) -> None:
        """Stop every target started here. Processes are killed: their state is thrown
        away, and how an implementation shuts down is not what a teardown checks."""
        for server in reversed(self.threads):
            server.stop()
        for process in reversed(self.processes):
            process.kill()


@contextlib.contextmanager
def _launcher(request: pytest.FixtureRequest, folder: Path) -> Iterator[Launcher]:
    launcher = Launcher(request, folder)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def orch_serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeFactory]:
    """Start servers with a configuration of their own; all stop at teardown.

    ``orch_serve(pools=[{...}], auth_token="t")`` returns a started, ready
    :class:`Target`; keys are those of the configuration file (spec section 11).
    ``ready=None`` waits for ``/readyz``; ``ready=["default"]`` for those pools only
    (a configuration with a pool meant to stay warming or down).

    In-process (the default) each call is an orchestratord of its own database;
    keyword ``engine_factory=``, ``clock=`` and ``wrap_app=`` (an ASGI wrapper
    around the whole app, for mutants) are passed to it, and ``config=`` takes a
    whole :class:`~orchestrator.config.Config`. With ``--orch-serve-cmd`` each call
    writes the configuration and starts the command (without ``pools``, two replicas
    on the harness's engine); against ``--orch-url`` the test is skipped with
    :data:`LIVE_TARGET_SKIP`.
    """
    mode = target_mode(request.config)
    if mode == "live":
        pytest.skip(LIVE_TARGET_SKIP)
    with _launcher(request, tmp_path) as launcher:
        if mode == "managed":
            command = serve_command(request.config)
            launcher.engine_url()  # started now, not inside the test (it outlives the test)

            def start(
                config: Config | None = None,
                *,
                ready: Iterable[str] | None = None,
                **overrides: Any,
            ) -> Target:
                if config is not None:
                    pytest.fail("orch_serve(config=...) needs an in-process orchestratord")
                return launcher.process(command, ready, **overrides)

        else:

            def start(
                config: Config | None = None,
                *,
                ready: Iterable[str] | None = None,
                **overrides: Any,
            ) -> Target:
                return launcher.thread(config, ready, **overrides)

        yield start


@pytest.fixture
def orch_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeFactory]:
    """Start targets in processes of their own, which the test can kill and restart.

    ``orch_process(**config)`` returns a ready :class:`Target` (``ready=`` as for
    :func:`orch_serve`; without ``pools``, two replicas on the harness's engine) whose
    :meth:`~Target.kill` (SIGKILL), :meth:`~Target.terminate` (SIGTERM) and
    :meth:`~Target.restart` (same configuration and state folder) drive the process.
    The command is ``--orch-serve-cmd``, else ``orchq serve`` of this installation.
    Against ``--orch-url`` the test is skipped with :data:`LIVE_TARGET_SKIP`.
    """
    if target_mode(request.config) == "live":
        pytest.skip(LIVE_TARGET_SKIP)
    command = serve_command(request.config)
    with _launcher(request, tmp_path) as launcher:
        launcher.engine_url()  # started now, not inside the test (it outlives the test)

        def start(*, ready: Iterable[str] | None = None, **overrides: Any) -> Target:
            return launcher.process(command, ready, **overrides)

        yield start


@pytest.fixture(scope="session")
def _orch_shared_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedServer]:
    """Managed runs: one target per worker with the configuration no check chose."""
    command = serve_command(request.config)
    with _launcher(request, tmp_path_factory.mktemp("shared-target")) as launcher:
        target = launcher.process(command, None)
        assert target.process is not None
        yield target.process


@pytest.fixture
def orch_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under test: ``--orch-url`` if given, a worker-wide target started by
    ``--orch-serve-cmd``, else a fresh in-process default.

    A live or worker-wide target is shared by many tests, so the persisted-settings
    guard (:mod:`harness.plugin.persisted`) wraps the test that uses it. A shared
    managed target that is found dead (it crashed in an earlier test) is restarted.
    """
    mode = target_mode(request.config)
    if mode == "in-process":
        serve: ServeFactory = request.getfixturevalue("orch_serve")
        yield serve()
        return
    if mode == "managed":
        process: ManagedServer = request.getfixturevalue("_orch_shared_target")
        if not process.running:
            process.start()
        target = Target(url=process.url, token=process.token, process=process)
    else:
        target = Target(url=str(live_url(request.config)), token=live_token(request.config))
    with guarded(request, target):
        yield target


@pytest.fixture
def orch_client(orch_target: Target) -> Iterator[OrchClient]:
    """A blocking client on :func:`orch_target`, closed at teardown."""
    with orch_target.client() as client:
        yield client
