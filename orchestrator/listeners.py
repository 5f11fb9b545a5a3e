"""The event loop orchestratord runs on, and the sockets it listens on.

uvicorn's own ``loop="auto"`` picks uvloop when it is installed (it is, with
``uvicorn[standard]``), but only inside ``uvicorn.run``; orchestratord runs
``Server.serve()`` on a loop of its own, so it makes the same choice here.
On uvloop orchestratord admits more tasks per second than on the stdlib loop
(docs/design/performance.md).

uvloop has one catch for a busy server: libuv accepts one connection per
listening socket per loop iteration, so 64 clients connecting at once to a
loop whose iterations take 3-4 ms wait up to ~200 ms for their ``accept()``,
and their first requests carry it. On Linux, :func:`listening_sockets` binds
several ``SO_REUSEPORT`` sockets to the one address, the kernel spreads new
connections over them, and a burst is accepted in a few iterations. Before it
binds the group it binds the address once without ``SO_REUSEPORT``: that
fails, as a plain ``bind()`` would, when anything (another orchestratord
included) already listens there, so two servers never share a port by
accident.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from collections.abc import Callable

LISTENERS = 64
"""Listening sockets per address under uvloop on Linux (one fd each)."""

_EPHEMERAL_RETRIES = 3


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it can be imported, else the stdlib one."""
    try:
        import uvloop
    except ImportError:  # e.g. Windows, where uvicorn[standard] does not install it
        return asyncio.new_event_loop
    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_loop


def spreads_accepts(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` needs several listening sockets to accept a burst quickly."""
    return (
        type(loop).__module__.startswith("uvloop")
        and hasattr(socket, "SO_REUSEPORT")
        and sys.platform.startswith("linux")
    )


def listening_sockets(host: str, port: int, count: int = LISTENERS) -> list[socket.socket] | None:
    """``count`` bound sockets sharing ``host:port`` (``port`` 0: one free port for all).

    ``None`` when ``host`` names several addresses (``localhost`` may be both
    127.0.0.1 and ::1): uvicorn then binds each of them itself, as it would
    without this module. Raises :class:`OSError` as ``bind()`` does when the
    address is taken or cannot be assigned. The sockets are not listening
    yet: ``create_server`` starts them with uvicorn's backlog.
    """
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    if len({info[4] for info in infos}) != 1:
        return None
    family, _, _, _, address = infos[0]
    for attempt in range(_EPHEMERAL_RETRIES):
        bound_port = _probe(family, address)
        try:
            return _bind_group(family, (address[0], bound_port, *address[2:]), count)
        except OSError as exc:
            # An ephemeral port taken between the probe and the group: pick another.
            if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _EPHEMERAL_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _probe(family: int, address: tuple[object, ...]) -> int:
    """Bind ``address`` the plain way (fails if anything listens there); returns its port."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        return int(probe.getsockname()[1])


def _bind_group(family: int, address: tuple[object, ...], count: int) -> list[socket.socket]:
    group: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            group.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.setblocking(False)
    except BaseException:
        for sock in group:
            sock.close()
        raise
    return group
