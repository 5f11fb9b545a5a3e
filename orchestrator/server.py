"""Running orchestratord under uvicorn: in the foreground, or in a thread.

``run(serve(...))`` serves in the foreground on the loop :mod:`orchestrator.listeners`
picks (uvloop when installed). ``ServerThread`` serves real HTTP on an
ephemeral loopback port from a background thread with an event loop of the
same kind. The embedded ``orchq run`` and the test fixtures use it, so tests
exercise the same stack as production; it listens on one socket, as nothing
there opens a burst of connections.

Both build uvicorn the same way: the app's :class:`ConnectionGuard` wraps the
HTTP protocol (header timeout, head size, connection count), ``ws="none"``
answers an upgrade request as a plain request (ORCH-0161), and uvicorn's own
``timeout_keep_alive`` closes idle keep-alive connections (ORCH-0164). Only
``serve`` changes the process: it raises the soft open-file limit to the hard
one (ORCH-0176); both keep the connection limit within the open-file limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from orchestrator.api import create_app
from orchestrator.config import Config, ReplicaConfig
from orchestrator.connections import ConnectionGuard
from orchestrator.engines import Engine, build_engine
from orchestrator.listeners import LISTENERS, listening_sockets, loop_factory, spreads_accepts
from orchestrator.runtime import Clock
from orchestrator.store.lock import DatabaseLock

log = logging.getLogger("orchestrator.server")

FD_RESERVE = 64 + LISTENERS
"""Open files kept for anything but client connections: listening sockets, the database
(and its log, index and checkpointer), the event loop, standard streams; engine
connections are added per replica slot."""


YOUNG_GC_THRESHOLD = 10_000
"""Allocations between young collections (CPython's default: 700)."""


def _without_websocket_advice(record: logging.LogRecord) -> bool:
    """uvicorn's advice to install a WebSocket library, logged for every upgrade request:
    with ``ws="none"`` an upgrade is answered as a plain request on purpose."""
    return "WebSocket library" not in record.getMessage()


def _uvicorn_config(
    app: object, host: str, port: int, access_log: bool, config: Config, guard: ConnectionGuard
) -> uvicorn.Config:
    built = uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=guard.protocol(AutoHTTPProtocol),  # the one uvicorn's http="auto" picks
        ws="none",
        host=host,
        port=port,
        access_log=access_log,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,  # no proxy in front by default: don't rewrite client addresses
        server_header=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=config.keep_alive_timeout_s,
    )
    if access_log:  # uvicorn logs each request at INFO, below the server's log level
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if _without_websocket_advice not in uvicorn_errors.filters:
        uvicorn_errors.addFilter(_without_websocket_advice)
    return built


def _fd_reserve(config: Config) -> int:
    engine_slots = sum(
        replica.slots for pool in config.pools for replica in pool.replicas
        if replica.engine != "mock"
    )  # fmt: skip
    return FD_RESERVE + engine_slots


def open_file_limit() -> int | None:
    """The soft limit on open files, or None where the platform has no such limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_file_limit() -> int | None:
    """Raise the soft open-file limit to the hard limit (ORCH-0176); the soft limit after."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= soft:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard


def bound_port(server: uvicorn.Server) -> int:
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server is not listening")


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    access_log: bool = False,
    on_ready: Callable[[str], None] | None = None,
    database_lock: DatabaseLock | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready`` receives the base URL once bound.

    ``database_lock``: the database's lock, already held by the caller.
    """
    app = create_app(config, database_lock=database_lock)
    guard: ConnectionGuard = app.state.connections
    open_files = raise_open_file_limit() if config.raise_open_file_limit else open_file_limit()
    if open_files is not None:
        guard.fit_to_open_files(open_files, _fd_reserve(config))
    server = uvicorn.Server(_uvicorn_config(app, host, port, access_log, config, guard))
    sockets = None
    if config.tuning.reuseport_listeners and spreads_accepts(asyncio.get_running_loop()):
        sockets = listening_sockets(host, port)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    if config.tuning.gc_freeze:
        tune_garbage_collector()
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no startup event)
        await asyncio.sleep(0.01)
    if server.started and on_ready is not None:
        on_ready(f"http://{host}:{bound_port(server)}")
    await serving
    if not server.started:
        raise RuntimeError("orchestratord failed to start (see the log above)")


def tune_garbage_collector() -> None:
    """What exists at start is never scanned again; young collections run less often.

    Why these numbers: docs/design/performance.md.
    """
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 50, 100)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` (e.g. :func:`serve`) on a new loop of the kind :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)


class ServerThread:
    """orchestratord on ``127.0.0.1:<ephemeral>`` in a daemon thread."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        engine_factory: Callable[[ReplicaConfig], Engine] = build_engine,
        startup_timeout: float = 15.0,
        wrap_app: Callable[[Any], Any] | None = None,
    ) -> None:
        self.app = create_app(config, clock=clock, engine_factory=engine_factory)
        # ``wrap_app`` puts an ASGI layer around the whole app: harness self-tests
        # use it to build deliberately broken orchestrators (mutants).
        served = wrap_app(self.app) if wrap_app is not None else self.app
        guard: ConnectionGuard = self.app.state.connections
        open_files = open_file_limit()
        if open_files is not None:
            guard.fit_to_open_files(open_files, _fd_reserve(config))
        uvicorn_config = _uvicorn_config(served, "127.0.0.1", 0, False, config, guard)
        self._server = uvicorn.Server(uvicorn_config)
        self._thread = threading.Thread(target=self._run, name="orchq-server", daemon=True)
        self._startup_timeout = startup_timeout
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""

    def _run(self) -> None:
        try:
            self.loop = loop_factory()()
            self.loop.run_until_complete(self._server.serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            if self.loop is not None:
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.close()

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                error = getattr(self.app.state, "start_error", None) or self._error
                raise RuntimeError(f"orchestratord failed to start: {error}")
            if time.monotonic() > deadline:
                raise RuntimeError("orchestratord did not start in time")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{bound_port(self._server)}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def call(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` on the server's event loop and return its result (white-box tests)."""
        assert self.loop is not None

        async def wrapper() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
