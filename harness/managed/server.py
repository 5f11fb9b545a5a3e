"""One implementation under test in a process the harness owns: configure, start, kill, restart.

A :class:`ManagedServer` writes its configuration (the keys of spec section 11,
YAML) into its state folder, picks a free loopback port, runs the serve command
(:class:`~harness.managed.command.ServeCommand`) and waits until the server is
ready: ``GET /readyz`` answers 200, or, for a configuration with pools that
are meant never to become ready (a warming or a down pool), ``GET /healthz``
answers 200 and the pools it expects are ``ready`` in ``GET /v1/pools``.

It can then be killed (``SIGKILL``, the crash of spec section 10), terminated
(``SIGTERM``) and restarted on the same configuration and state folder.

Ports: the harness picks a free one below the kernel's ephemeral range, which
no server started on port 0 can take; another process may still bind it before
the server does. A server that exits before it is ready is started again on
another port when its port is now taken (a bind race); otherwise its exit is
the failure, reported with the end of its log. While a server starts, whatever
answers on its port counts only if the server is still running and lists
exactly the configured pools, so another server that won the race is not
mistaken for it.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.managed.children import ChildGroup
from harness.managed.command import ServeCommand

__all__ = ["ManagedServer", "ServeError", "free_port", "wait_ready", "write_config"]

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 60.0
"""How long a start may take until the server is ready (imports, migrations, warm-up)."""
BIND_ATTEMPTS = 5
"""Starts on fresh ports after losing a bind race, before giving up."""
POLL_S = 0.02
LOG_TAIL_LINES = 25
CONFIG_NAME = "orchq-config.yaml"
LOG_NAME = "serve.log"
DATABASE_NAME = "orchq.db"


class ServeError(RuntimeError):
    """The target could not be started or did not become ready; says why, with its log's end."""


PORT_FLOOR = 10_000
"""Ports are picked from here up to the kernel's ephemeral range (exclusive)."""


def _ephemeral_floor() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A loopback port nothing listens on right now, outside the kernel's ephemeral range.

    Every server started with port 0 (and every outgoing connection) gets an ephemeral
    port; picking below that range keeps them from taking the port between this pick
    and the serve command's bind. Only a bind to this very port can still win the race.
    """
    ceiling = _ephemeral_floor()
    for _ in range(50):
        port = random.randrange(PORT_FLOOR, ceiling) if ceiling > PORT_FLOOR else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise ServeError("no free loopback port below the ephemeral range")


def _port_taken(port: int) -> bool:
    """Whether something listens on ``port`` now (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def write_config(path: Path, document: Mapping[str, Any]) -> None:
    """The configuration as YAML, keys sorted, so the same document gives the same bytes."""
    text = yaml.safe_dump(dict(document), sort_keys=True, default_flow_style=False)
    path.write_text(text, encoding="utf-8")


class ManagedServer:
    """The implementation under test, started by ``command`` on ``config`` in ``state_dir``.

    ``config`` is the configuration document without ``database``, which is set
    to a file in ``state_dir``. ``ready_pools``: ``None`` waits for ``/readyz``;
    a list waits for ``/healthz`` and those pools (an empty list: ``/healthz`` only).
    """

    def __init__(
        self,
        command: ServeCommand,
        config: Mapping[str, Any],
        state_dir: Path,
        *,
        ready_pools: Iterable[str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.state_dir = state_dir
        self.config: dict[str, Any] = {
            **dict(config),
            "database": str(state_dir / DATABASE_NAME),
        }
        self.ready_pools = None if ready_pools is None else tuple(ready_pools)
        self.startup_timeout = startup_timeout
        self.cwd = cwd
        self.env = env
        self.port: int | None = None
        self.starts = 0
        self._group: ChildGroup | None = None

    # ------------------------------------------------------------ facts

    @property
    def config_path(self) -> Path:
        return self.state_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_NAME

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server was never started")
        return f"http://{HOST}:{self.port}"

    @property
    def token(self) -> str | None:
        token = self.config.get("auth_token")
        return token if isinstance(token, str) else None

    @property
    def running(self) -> bool:
        return self._group is not None and self._group.alive

    @property
    def pid(self) -> int | None:
        """The process ID of the serve command's process (its group's leader)."""
        return self._group.pgid if self._group is not None else None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's output (every start appends to one log)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        tail = text.splitlines()[-lines:]
        return "\n".join(tail) if tail else "(the server wrote nothing)"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Start the server and wait until it is ready; returns its URL.

        A restart (after :meth:`kill` or :meth:`terminate`) keeps the configuration and the
        state folder, and tries the previous port first.
        """
        if self.running:
            raise RuntimeError(f"the server on {self.url} is still running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.starts == 0:
            write_config(self.config_path, self.config)
        restart = self.port is not None
        port = self.port if self.port is not None else free_port()
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self._launch(port)
            ready, why = self._wait_ready(port)
            if ready:
                return self.url
            group = self._group
            if group is not None and not group.alive and attempt < BIND_ATTEMPTS:
                if _port_taken(port):  # someone else listens there now: a bind race
                    port = free_port()
                    continue
                if restart and attempt == 1:
                    # The old port of a restart may still be in TIME_WAIT for a server that
                    # binds without SO_REUSEADDR: one more try on a fresh port.
                    port = free_port()
                    continue
            self.kill()
            raise ServeError(
                f"the serve command did not become ready ({why}): {self._rendered(port)}\n"
                f"--- end of {self.log_path}\n{self.log_tail()}"
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def kill(self) -> None:
        """SIGKILL the server (and everything its command started): a crash."""
        if self._group is not None:
            self._group.kill()

    def terminate(self) -> int | None:
        """SIGTERM the server and wait until it has exited; returns its exit status."""
        if self._group is None:
            return None
        return self._group.terminate()

    def restart(self) -> str:
        """Stop the server if it still runs (SIGTERM), start it again on the same state."""
        if self.running:
            self.terminate()
        return self.start()

    def stop(self) -> None:
        """Terminate the server if it runs; safe to call any number of times."""
        if self.running:
            self.terminate()
        elif self._group is not None:
            self._group.kill()  # the leader exited: take whatever it left in its group

    # ------------------------------------------------------------ internals

    def _rendered(self, port: int) -> str:
        return self.command.render(port=port, config=self.config_path, state_dir=self.state_dir)

    def _launch(self, port: int) -> None:
        if self._group is not None:
            self._group.kill()  # a previous start's group (exited, or killed): reaped
        self.port = port
        self.starts += 1
        rendered = self._rendered(port)
        with self.log_path.open("ab") as log:
            log.write(f"== orchq: start {self.starts}: {rendered}\n".encode())
            log.flush()
            self._group = ChildGroup(
                rendered, shell=True, cwd=self.cwd, env=self.env or os.environ, stdout=log
            )

    def _wait_ready(self, port: int) -> tuple[bool, str]:
        """Poll until ready (True), the process exits or the start times out (False, why)."""

        def exited() -> str | None:
            group = self._group
            if group is None or not group.alive:
                code = group.returncode if group is not None else None
                return f"it exited with status {code} before it was ready"
            return None

        return wait_ready(
            f"http://{HOST}:{port}",
            self.token,
            ready_pools=self.ready_pools,
            configured_pools=[str(p.get("pool_id")) for p in self.config.get("pools") or []],
            timeout=self.startup_timeout,
            gone=exited,
        )


def wait_ready(
    url: str,
    token: str | None,
    *,
    ready_pools: Iterable[str] | None,
    configured_pools: Iterable[str] = (),
    timeout: float = STARTUP_TIMEOUT_S,
    gone: Callable[[], str | None] = lambda: None,
) -> tuple[bool, str]:
    """Poll ``url`` until the server is ready: ``(True, '')``, or ``(False, why)`` once
    ``gone()`` says the server is no more or ``timeout`` seconds have passed.

    Ready means ``/readyz`` answers 200 (``ready_pools`` None), or ``/healthz`` answers 200
    and every pool of ``ready_pools`` is ready; and the pools listed are exactly
    ``configured_pools`` (when the list can be read), so another server is not taken for it.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    pools = tuple(ready_pools) if ready_pools is not None else None
    configured = set(configured_pools)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=url, headers=headers, timeout=5.0) as http:
        while True:
            why_gone = gone()
            if why_gone is not None:
                return False, why_gone
            with contextlib.suppress(httpx.HTTPError):
                last = _readiness(http, pools, configured)
                if not last:
                    return True, ""
            if time.monotonic() > deadline:
                return False, f"not ready after {timeout:.0f} s: {last}"
            time.sleep(POLL_S)


def _readiness(
    http: httpx.Client, ready_pools: tuple[str, ...] | None, configured: set[str]
) -> str:
    """What the server still lacks ('' when it is ready and is the configured server)."""
    probe = "/readyz" if ready_pools is None else "/healthz"
    status = http.get(probe).status_code
    if status != 200:
        return f"{probe} answers {status}"
    pools = _pool_states(http)
    if pools is None:
        return ""  # no readable pool list: readiness is all there is to go by
    if configured and set(pools) != configured:
        return f"the server on this port lists pools {sorted(pools)}, not {sorted(configured)}"
    waiting = [p for p in ready_pools or () if not pools.get(p)]
    if waiting:
        return f"pools {waiting} are not ready"
    return ""


def _pool_states(http: httpx.Client) -> dict[str, bool] | None:
    """``pool_id -> ready`` from ``GET /v1/pools``, or None when it cannot be read."""
    response = http.get("/v1/pools")
    if response.status_code != 200:
        return None
    try:
        listed = response.json().get("pools")
        return {str(p["pool_id"]): bool(p.get("ready")) for p in listed}
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
