"""ConnectionGuard follows heads and bodies in the byte stream, whatever the app's timing.

A fake transport stands for the socket and the guard's protocol wraps a protocol
that records what reaches HTTP; the edge's signals (``request_started``,
``response_finished``) are sent by hand. Real servers: tests/orchestrator/
test_connection_limits.py.

Spec: ORCH-0163, ORCH-0165, ORCH-0166.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator.connections import ConnectionGuard, ConnectionLimits

_ports = itertools.count(40000)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.peer = ("127.0.0.1", next(_ports))
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Recorder(asyncio.Protocol):
    def __init__(self, **_: Any) -> None:
        self.received = b""

    def data_received(self, data: bytes) -> None:
        self.received += data


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def connect(guard: ConnectionGuard) -> tuple[FakeTransport, asyncio.Protocol]:
    transport = FakeTransport()
    protocol = guard.protocol(Recorder)()
    protocol.connection_made(transport)
    return transport, protocol


HEAD = b"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"


@pytest.mark.req("ORCH-0165")
def test_a_body_is_skipped_by_its_length_and_the_next_head_is_counted() -> None:
    """A body full of blank lines is no head; the head after it, in the same read, is."""

    async def scenario() -> None:
        guard = ConnectionGuard(ConnectionLimits(max_header_bytes=1024))
        transport, protocol = connect(guard)
        body = b"\r\n\r\n" * 4096  # 16 KiB of what looks like head ends
        protocol.data_received(HEAD % len(body) + body + b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
        assert b"431" in transport.written, "the oversized pipelined head went unnoticed"

        transport, protocol = connect(guard)
        protocol.data_received(HEAD % len(body) + body + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert transport.written == b"" and not transport.closed

    run(scenario)


@pytest.mark.req("ORCH-0165")
def test_an_endless_pipelined_head_during_a_long_response_closes_the_connection() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ConnectionLimits(max_header_bytes=1024))
        transport, protocol = connect(guard)
        protocol.data_received(b"GET /v1/tasks/t/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        assert not guard.request_started(transport.peer)  # the stream is being sent
        protocol.data_received(b"GET / HTTP/1.1\r\nX: ")
        for _ in range(10):
            protocol.data_received(b"a" * 200)
        assert transport.closed, "a pipelined head grew past the limit during a response"
        assert transport.written == b"", "a 431 was written into the middle of a response"

    run(scenario)


@pytest.mark.req("ORCH-0163", "ORCH-0166")
def test_only_connections_waiting_for_a_head_are_evicted() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ConnectionLimits(max_connections=2))
        busy, busy_protocol = connect(guard)
        busy_protocol.data_received(b"GET /v1/tasks/t/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        guard.request_started(busy.peer)
        idle, _ = connect(guard)
        third, _ = connect(guard)  # the idle one makes room
        assert (busy.closed, idle.closed, third.closed) == (False, True, False)
        fourth, _ = connect(guard)  # the third waits: it goes
        assert third.closed and not fourth.closed

        guard.response_finished(busy.peer)  # the stream ended: busy waits now
        fifth, _ = connect(guard)
        assert busy.closed is False and fourth.closed  # fourth waited longer
        assert not fifth.closed

    run(scenario)


def test_a_chunked_body_or_an_upgrade_closes_the_connection_after_the_response() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ConnectionLimits())
        for head in (
            b"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ):
            transport, protocol = connect(guard)
            protocol.data_received(head)
            guard.request_started(transport.peer)
            guard.response_finished(transport.peer)
            await asyncio.sleep(0)
            assert transport.closed

    run(scenario)
