"""Connection limits uvicorn lacks: header timeout, request head size, connection count.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but sets
no limit on how long a request head may take to arrive, how large it may grow,
or how many connections are open: a few slow or huge heads, or enough idle
sockets to use up the open-file limit, made the server unreachable.
:class:`ConnectionGuard` adds those limits through uvicorn's public
``Config(http=<protocol class>)``: :meth:`ConnectionGuard.protocol` returns a
class that wraps uvicorn's HTTP protocol (composition, through the
``asyncio.Protocol`` interface only) and sees every connection and every byte
before it; the edge middleware tells it when a request reaches the app and when
its response ends (:meth:`request_started`, :meth:`response_finished`).

A connection *waits* from its start, and from the end of each response, until
its next request head is complete (a blank line, or the app receiving the
request). While it waits:

- its head may take ``header_timeout_s``, then the connection is closed
  (ORCH-0163); a sweep checks deadlines about once a second;
- its head may hold ``max_header_bytes``; one byte more is answered 431
  ``HEADERS_TOO_LARGE`` at once, the rest of what the client sends is read and
  dropped (up to ``DRAIN_BYTES`` or ``DRAIN_S``) so that the answer is not
  lost to a reset, and the connection is closed (ORCH-0165);
- it may be closed to make room: at ``max_connections`` open connections, a new
  one takes the place of the connection that has waited longest. When none
  waits, the newcomer is an *excess* connection: the edge answers its requests
  with 503 ``SERVER_BUSY``, except ``/healthz``, ``/readyz`` and ``/metrics``,
  and closes it after one response (ORCH-0166, ORCH-0167). Excess connections
  are bounded too (``excess_room``); beyond them a connection is closed at once.

Connections are matched to requests by the client address (uvicorn's
``scope["client"]`` is the transport's peer name), unique per open TCP
connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from orchestrator.compact_json import dumps
from orchestrator.errors import ApiError, ErrorKind, new_request_id

log = logging.getLogger("orchestrator.connections")

Peer = tuple[str, int]

SWEEP_S = 1.0
"""How often deadlines are checked: a timeout closes a connection up to this much late."""
DRAIN_S = 2.0
"""How long a rejected connection's further bytes are read and dropped before it is closed."""
DRAIN_BYTES = 1024 * 1024
"""How many of them, at most."""
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 65_536
    max_connections: int = 4096


def excess_room(max_connections: int) -> int:
    """Excess connections allowed beyond ``max_connections`` (answered 503 or health)."""
    return max(16, max_connections // 16)


class _Connection:
    __slots__ = ("deadline", "draining", "excess", "head_bytes", "peer", "tail", "transport",
                 "waiting")  # fmt: skip

    def __init__(self, transport: asyncio.BaseTransport, peer: Peer | None, excess: bool) -> None:
        self.transport = transport
        self.peer = peer
        self.excess = excess
        self.waiting = True
        self.head_bytes = 0
        self.tail = b""
        """The last bytes of the head so far: its end may span two reads."""
        self.deadline: float | None = None
        self.draining = 0
        """Bytes still to drop after a 431 (0: not rejected)."""


def _peer(transport: asyncio.BaseTransport) -> Peer | None:
    """The key uvicorn's ``scope["client"]`` has for this connection (same conversion)."""
    info = transport.get_extra_info("peername")
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class ConnectionGuard:
    """The limits of one server's connections; see the module docstring."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.excess_room = excess_room(limits.max_connections)
        self._waiting_order: dict[_Connection, None] = {}
        """The counted connections, those that wait last in the order they began to wait."""
        self._excess: dict[_Connection, None] = {}
        self._by_peer: dict[Peer, _Connection] = {}
        self._sweep: asyncio.TimerHandle | None = None

    def fit_to_open_files(self, open_files: int, reserve: int) -> None:
        """Lower the connection limit so that it fits ``open_files`` minus ``reserve`` (ORCH-0177).

        ``reserve``: descriptors the server needs besides its connections
        (listening sockets, the database, engine connections, ...).
        """
        available = open_files - reserve
        wanted = self.limits.max_connections
        if wanted + excess_room(wanted) <= available:
            return
        room = max(16, available // 17)
        fitted = max(1, available - room)
        log.warning(
            "max_connections lowered from %d to %d: the open-file limit is %d "
            "(%d kept for listening sockets, the database and engines, %d for excess "
            "connections); raise the limit (ulimit -n) to allow more",
            wanted, fitted, open_files, reserve, room,
        )  # fmt: skip
        self.max_connections, self.excess_room = fitted, room

    @property
    def open_connections(self) -> int:
        return len(self._waiting_order) + len(self._excess)

    # ------------------------------------------------------------ the protocol's side

    def protocol(self, inner: Callable[..., asyncio.Protocol]) -> type[asyncio.Protocol]:
        """A class for ``uvicorn.Config(http=...)``: this guard in front of ``inner``."""
        guard = self

        class GuardedProtocol(asyncio.Protocol):
            def __init__(self, **kwargs: Any) -> None:
                self._inner = inner(**kwargs)
                self._connection: _Connection | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self._connection = guard._opened(transport)
                self._inner.connection_made(transport)

            def data_received(self, data: bytes) -> None:
                connection = self._connection
                if connection is None or guard._received(connection, data):
                    self._inner.data_received(data)

            def eof_received(self) -> bool | None:
                return self._inner.eof_received()

            def connection_lost(self, exc: Exception | None) -> None:
                if self._connection is not None:
                    guard._closed(self._connection)
                self._inner.connection_lost(exc)

            def pause_writing(self) -> None:
                self._inner.pause_writing()

            def resume_writing(self) -> None:
                self._inner.resume_writing()

        return GuardedProtocol

    def _opened(self, transport: asyncio.BaseTransport) -> _Connection | None:
        excess = False
        if len(self._waiting_order) >= self.max_connections and not self._evict(
            self._waiting_order
        ):
            if len(self._excess) >= self.excess_room and not self._evict(self._excess):
                transport.close()  # nothing to free: refused
                return None
            excess = True
        connection = _Connection(transport, _peer(transport), excess)
        (self._excess if excess else self._waiting_order)[connection] = None
        if connection.peer is not None:
            self._by_peer[connection.peer] = connection
        self._start_waiting(connection)
        return connection

    def _evict(self, connections: dict[_Connection, None]) -> bool:
        """Close the connection of ``connections`` that has waited longest; False if none waits."""
        victim = next((c for c in connections if c.waiting), None)
        if victim is None:
            return False
        self._forget(victim)
        victim.transport.close()
        return True

    def _received(self, connection: _Connection, data: bytes) -> bool:
        """Account for ``data``; False when it must not reach the HTTP protocol."""
        if connection.draining:
            connection.draining = max(0, connection.draining - len(data))
            if not connection.draining:
                connection.transport.close()
            return False
        if not connection.waiting:
            return True
        if not connection.head_bytes:
            data = data.lstrip(b"\r\n")  # blank lines before a request line are no head
            if not data:
                return True
        seen = connection.tail + data
        end = seen.find(_HEAD_END)
        if end >= 0:
            connection.head_bytes += end + len(_HEAD_END) - len(connection.tail)
        else:
            connection.head_bytes += len(data)
            connection.tail = seen[-(len(_HEAD_END) - 1) :]
        if connection.head_bytes > self.limits.max_header_bytes:
            self._reject_head(connection)
            return False
        if end >= 0:
            self._stop_waiting(connection)
        return True

    def _reject_head(self, connection: _Connection) -> None:
        request_id = new_request_id()
        error = ApiError(
            ErrorKind.HEADERS_TOO_LARGE,
            f"the request head exceeds {self.limits.max_header_bytes} bytes",
        )
        body = dumps(error.envelope(request_id))
        head = (
            f"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\nconnection: close\r\n\r\n"
        )
        transport = cast(asyncio.Transport, connection.transport)  # uvloop's are not subclasses
        transport.write(head.encode("ascii") + body)
        if transport.can_write_eof():
            transport.write_eof()
        connection.waiting = False
        connection.draining = DRAIN_BYTES
        connection.deadline = asyncio.get_running_loop().time() + DRAIN_S
        self._arm_sweep()

    def _closed(self, connection: _Connection) -> None:
        self._forget(connection)

    def _forget(self, connection: _Connection) -> None:
        self._waiting_order.pop(connection, None)
        self._excess.pop(connection, None)
        if connection.peer is not None and self._by_peer.get(connection.peer) is connection:
            del self._by_peer[connection.peer]

    # ------------------------------------------------------------ the edge's side

    def request_started(self, client: object) -> bool:
        """A request reached the app: its head is complete. True for an excess connection."""
        connection = self._by_peer.get(client) if isinstance(client, tuple) else None
        if connection is None:
            return False
        self._stop_waiting(connection)
        return connection.excess

    def response_finished(self, client: object) -> None:
        """The response's last byte is being sent: the connection waits for a head again."""
        connection = self._by_peer.get(client) if isinstance(client, tuple) else None
        if connection is None or connection.draining:
            return
        if not connection.excess:  # the order is the order of waiting
            self._waiting_order.pop(connection, None)
            self._waiting_order[connection] = None
        self._start_waiting(connection)

    # ------------------------------------------------------------ deadlines

    def _start_waiting(self, connection: _Connection) -> None:
        connection.waiting = True
        connection.head_bytes = 0
        connection.tail = b""
        connection.deadline = asyncio.get_running_loop().time() + self.limits.header_timeout_s
        self._arm_sweep()

    def _stop_waiting(self, connection: _Connection) -> None:
        connection.waiting = False
        connection.deadline = None
        connection.tail = b""

    def _arm_sweep(self) -> None:
        if self._sweep is None:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(
                min(SWEEP_S, self.limits.header_timeout_s), self._run_sweep
            )

    def _run_sweep(self) -> None:
        self._sweep = None
        now = asyncio.get_running_loop().time()
        pending = False
        for connection in [*self._waiting_order, *self._excess]:
            deadline = connection.deadline
            if deadline is None:
                continue
            if now >= deadline:
                self._forget(connection)
                connection.transport.close()
            else:
                pending = True
        if pending:
            self._arm_sweep()
