"""Connection limits uvicorn lacks: header timeout, request head size, connection count.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but sets
no limit on how long a request head may take to arrive, how large it may grow,
or how many connections are open: a few slow or huge heads, or enough idle
sockets to use up the open-file limit, made the server unreachable.
:class:`ConnectionGuard` adds those limits through uvicorn's public
``Config(http=<protocol class>)``: :meth:`ConnectionGuard.protocol` returns a
class that wraps uvicorn's HTTP protocol (composition, through the
``asyncio.Protocol`` interface only) and sees every byte before it.

The guard follows each connection's requests in the byte stream: a head ends
at its blank line, and a ``Content-Length`` body is skipped byte for byte, so
it knows where every head starts, pipelined ones included, whatever the app
is doing meanwhile. A chunked body it does not follow: the connection is
closed after that request's response, which says ``Connection: close``
(requests pipelined before it are answered first). Per head:

- it may hold ``max_header_bytes``; one byte more is answered 431
  ``HEADERS_TOO_LARGE`` at once (or, while a response is being sent on the
  connection, the connection is closed), what the client sends next is read
  and dropped (up to ``DRAIN_BYTES`` or ``DRAIN_S``) so that the answer is not
  lost to a reset, and the connection is closed (ORCH-0165);
- a connection that is not busy (the edge middleware tells the guard when a
  request reaches the app and when its response ends) must complete its next
  head within ``header_timeout_s`` of opening or of its last response's end,
  else it is closed (ORCH-0163); a sweep checks deadlines about once a second;
- at ``max_connections`` open connections, a new one takes the place of the
  connection that has *waited* longest (not busy, no complete head pending).
  When none waits, the newcomer is an *excess* connection: the edge answers
  its requests with 503 ``SERVER_BUSY``, except ``/healthz``, ``/readyz`` and
  ``/metrics``, and closes it after one response (ORCH-0166, ORCH-0167).
  Excess connections are bounded too (``excess_room``); beyond them a
  connection is closed at once.

Connections are matched to requests by the client address (uvicorn's
``scope["client"]`` is the transport's peer name), unique per open TCP
connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from orchestrator.compact_json import dumps
from orchestrator.errors import ApiError, new_request_id
from orchestrator.vocabulary import ErrorKind

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
    __slots__ = (
        "body_left",
        "busy",
        "deadline",
        "draining",
        "excess",
        "head",
        "opaque",
        "peer",
        "pending",
        "transport",
    )

    def __init__(self, transport: asyncio.BaseTransport, peer: Peer | None, excess: bool) -> None:
        self.transport = transport
        self.peer = peer
        self.excess = excess
        self.busy = False
        """A request is with the app, or its response is being sent."""
        self.head = bytearray()
        """The bytes of the head being received (none between requests)."""
        self.body_left = 0
        """Bytes of the current request's body still to come (``Content-Length``)."""
        self.pending = 0
        """Complete heads whose requests have not reached the app yet (pipelining)."""
        self.opaque = False
        """A chunked body or a protocol upgrade: the guard no longer knows where heads start."""
        self.deadline: float | None = None
        self.draining = 0
        """Bytes still to drop after a 431 (0: not rejected)."""

    @property
    def waiting(self) -> bool:
        """Idle: not busy, no complete head waiting for the app, no body on its way."""
        return not (self.busy or self.pending or self.body_left or self.opaque)


def _unfollowed_now(connection: _Connection) -> bool:
    """The request at the app is the one whose body the guard does not follow.

    The guard reads no head after that one, so it is the last head seen: it is
    at the app once no complete head waits behind it. A request pipelined before
    it keeps the connection open.
    """
    return connection.opaque and not connection.pending


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,30})[ \t]*\r", re.I)
_UNFOLLOWED = re.compile(rb"\r\n(?:transfer-encoding[ \t]*:[^\r]*chunked|upgrade[ \t]*:)", re.I)
"""A chunked body (its end is not found by counting) or a protocol upgrade (uvicorn
stops parsing the connection after it)."""


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
            wanted,
            fitted,
            open_files,
            reserve,
            room,
        )
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
        """Follow ``data`` through heads and bodies; False when it must not reach HTTP."""
        if connection.draining:
            connection.draining = max(0, connection.draining - len(data))
            if not connection.draining:
                connection.transport.close()
            return False
        limit = self.limits.max_header_bytes
        view = memoryview(data)
        while view and not connection.opaque:
            if connection.body_left:
                skipped = min(connection.body_left, len(view))
                connection.body_left -= skipped
                view = view[skipped:]
                continue
            head = connection.head
            if not head:  # blank lines before a request line belong to no head
                blank = 0
                while blank < len(view) and view[blank] in b"\r\n":
                    blank += 1
                view = view[blank:]
                if not view:
                    break
            before = len(head)
            head += view[: limit + 1 - before]
            end = head.find(_HEAD_END, max(0, before - len(_HEAD_END) + 1))
            if end < 0 or end + len(_HEAD_END) > limit:
                if len(head) > limit:
                    self._reject_head(connection)
                    return False
                break
            length = end + len(_HEAD_END)
            view = view[length - before :]
            self._head_complete(connection, bytes(head[:length]))
        return True

    def _head_complete(self, connection: _Connection, head: bytes) -> None:
        connection.head = bytearray()
        connection.pending += 1
        connection.deadline = None
        if _UNFOLLOWED.search(head):
            connection.opaque = True
            return
        found = _CONTENT_LENGTH.search(head)
        connection.body_left = int(found.group(1)) if found else 0

    def _reject_head(self, connection: _Connection) -> None:
        if connection.busy:  # a response is being sent: a 431 cannot be put in the middle
            self._forget(connection)
            connection.transport.close()
            return
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
        connection.head = bytearray()
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
        """A request reached the app. True for an excess connection."""
        connection = self._by_peer.get(client) if isinstance(client, tuple) else None
        if connection is None:
            return False
        connection.busy = True
        connection.pending = max(0, connection.pending - 1)
        connection.deadline = None
        return connection.excess

    def closes_after_response(self, client: object) -> bool:
        """Whether the connection is closed once its current response is sent.

        True for an excess connection and for one whose chunked body the guard
        does not follow: the response then says ``Connection: close``, so that a
        client never sends its next request on a connection that is going away.
        """
        connection = self._by_peer.get(client) if isinstance(client, tuple) else None
        return connection is not None and (connection.excess or _unfollowed_now(connection))

    def response_finished(self, client: object, *, reusable: bool = True) -> None:
        """The response's last byte is being sent: the connection may wait for a head again.

        ``reusable=False``: the request's body did not end, so what follows on the
        connection is no request; it is closed once the response is written, as
        is a connection whose chunked body the guard could not follow.
        """
        connection = self._by_peer.get(client) if isinstance(client, tuple) else None
        if connection is None or connection.draining:
            return
        connection.busy = False
        if not reusable or _unfollowed_now(connection):
            self._forget(connection)
            asyncio.get_running_loop().call_soon(connection.transport.close)
            return
        if not connection.excess:  # the order is the order of waiting
            self._waiting_order.pop(connection, None)
            self._waiting_order[connection] = None
        if connection.waiting:
            self._start_waiting(connection)

    # ------------------------------------------------------------ deadlines

    def _start_waiting(self, connection: _Connection) -> None:
        connection.deadline = asyncio.get_running_loop().time() + self.limits.header_timeout_s
        self._arm_sweep()

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
