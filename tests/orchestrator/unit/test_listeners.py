"""The event loop ``orchq serve`` runs on, and the sockets it listens on.

See orchestrator/listeners.py.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.listeners import (
    LISTENERS,
    listening_sockets,
    loop_factory,
    spreads_accepts,
)
from orchestrator.runtime.clock import sleep_at_least
from tests.orchestrator.serve_process import ServeProcess

uvloop = pytest.importorskip("uvloop")
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux"
)


def test_the_loop_is_uvloop_when_it_is_installed() -> None:
    loop = loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_loop_is_the_stdlib_one_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loop_factory() is asyncio.new_event_loop


@linux_only
def test_only_uvloop_is_given_several_listening_sockets() -> None:
    uv_loop, stdlib_loop = uvloop.new_event_loop(), asyncio.new_event_loop()
    try:
        assert spreads_accepts(uv_loop)
        assert not spreads_accepts(stdlib_loop)  # it accepts a whole backlog per wake-up
    finally:
        uv_loop.close()
        stdlib_loop.close()


@linux_only
def test_a_group_of_sockets_shares_one_free_port_and_accepts_on_it() -> None:
    group = listening_sockets("127.0.0.1", 0, count=4)
    assert group is not None
    try:
        ports = {sock.getsockname() for sock in group}
        assert len(group) == 4 and len(ports) == 1
        for sock in group:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            sock.listen(16)
        (address,) = ports
        clients = [socket.create_connection(address, timeout=5) for _ in range(16)]
        accepted = 0
        for sock in group:
            sock.setblocking(False)
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted += 1
        for client in clients:
            client.close()
        assert accepted == 16
    finally:
        for sock in group:
            sock.close()


@linux_only
def test_an_address_in_use_is_refused_like_a_plain_bind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use") as caught:
            listening_sockets("127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE


@linux_only
def test_a_second_group_cannot_join_the_first() -> None:
    """Two servers on one port would split its connections: the probe bind refuses it."""
    first = listening_sockets("127.0.0.1", 0, count=2)
    assert first is not None
    try:
        for sock in first:
            sock.listen(16)
        port = first[0].getsockname()[1]
        with pytest.raises(OSError, match="in use") as caught:
            listening_sockets("127.0.0.1", port, count=2)
        assert caught.value.errno == errno.EADDRINUSE
    finally:
        for sock in first:
            sock.close()


def test_a_host_with_several_addresses_is_left_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    two = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: two)
    assert listening_sockets("localhost", 0) is None


def _listening_sockets_on(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                count += 1
    return count


@linux_only
def test_orchq_serve_listens_on_a_group_of_sockets(
    serve_process: Callable[[Path, Path], ServeProcess], tmp_path: Path
) -> None:
    config = tmp_path / "orchq.yaml"
    config.write_text("{}\n", encoding="utf-8")
    server = serve_process(config, tmp_path / "orchq.db")
    port = int(server.url.rsplit(":", 1)[1])
    assert _listening_sockets_on(port) == LISTENERS


def test_sleep_at_least_never_wakes_early_on_uvloop() -> None:
    """uvloop's millisecond timers wake ``asyncio.sleep`` up to ~1 ms early."""

    async def shortest_of(sleep: Callable[[float], object], delay_s: float) -> float:
        shortest = float("inf")
        for _ in range(40):
            burn_until = time.monotonic() + 0.0017  # a busy turn before the timer is set
            while time.monotonic() < burn_until:
                pass
            began = time.monotonic()
            await sleep(delay_s)  # type: ignore[misc]
            shortest = min(shortest, time.monotonic() - began)
        return shortest

    assert uvloop.run(shortest_of(sleep_at_least, 0.0043)) >= 0.0043
