"""A response's head is written together with its body (orchestrator/coalescing.py).

The transport is tested alone, then under uvicorn's real protocol, built as
the server builds it, with a recording transport in place of the socket, so
each write uvicorn makes is seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from orchestrator.coalescing import CoalescingTransport
from orchestrator.config import Config
from orchestrator.server import http_protocol

pytestmark = pytest.mark.anyio

HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Stands in for a socket's transport: keeps every write as one item."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _coalescing() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner


async def test_a_head_and_the_body_after_it_are_one_write() -> None:
    transport, inner = await _coalescing()
    transport.write(HEAD)
    assert inner.writes == []
    transport.write(b"{}")
    assert inner.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert inner.writes == [HEAD + b"{}"]


async def test_a_head_whose_body_does_not_follow_goes_out_at_the_next_loop_turn() -> None:
    transport, inner = await _coalescing()
    transport.write(HEAD)
    assert transport.get_write_buffer_size() == len(HEAD)
    await asyncio.sleep(0)
    assert inner.writes == [HEAD]
    transport.write(b"data: 1\n\n")  # a later chunk is not kept back
    assert inner.writes == [HEAD, b"data: 1\n\n"]
    assert transport.get_write_buffer_size() == 0


async def test_other_writes_are_not_kept_back() -> None:
    transport, inner = await _coalescing()
    transport.write(b"5\r\nhello\r\n")
    transport.write(memoryview(b"0\r\n\r\n"))
    assert inner.writes == [b"5\r\nhello\r\n", b"0\r\n\r\n"]


async def test_closing_sends_a_kept_head_first_and_abort_drops_it() -> None:
    transport, inner = await _coalescing()
    transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    transport.close()
    assert inner.writes == [b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"]
    assert inner.closed
    await asyncio.sleep(0)
    assert len(inner.writes) == 1  # not sent twice

    transport, inner = await _coalescing()
    transport.write(HEAD)
    transport.abort()
    await asyncio.sleep(0)
    assert inner.writes == [] and inner.aborted


async def test_writelines_and_write_eof_send_a_kept_head_first() -> None:
    transport, inner = await _coalescing()
    transport.write(HEAD)
    transport.writelines([b"{", b"}"])
    assert inner.writes == [HEAD, b"{", b"}"]

    transport, inner = await _coalescing()
    transport.write(HEAD)
    transport.write_eof()
    assert inner.writes == [HEAD, b"<eof>"]


async def test_a_head_kept_when_the_peer_went_away_is_dropped() -> None:
    transport, inner = await _coalescing()
    transport.write(HEAD)
    inner.closed = True  # connection lost before the next turn
    await asyncio.sleep(0)
    assert inner.writes == []


# ---------------------------------------------------------------- under uvicorn


async def _whole(request: Request) -> Response:
    return JSONResponse({"ok": True}, status_code=202)


async def _stream(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.01)  # the first event comes turns later
        yield b"data: 1\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


APP = Starlette(routes=[Route("/whole", _whole), Route("/stream", _stream)])


async def _exchange(request: bytes, config: Config | None = None) -> RecordingTransport:
    """``request`` through uvicorn's protocol as the server builds it; the writes it made."""
    config = config or Config()
    built = uvicorn.Config(APP, http=http_protocol(config), log_level="warning")
    built.load()
    protocol = http_protocol(config)(config=built, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(200):
        if transport.closed or b"data: 1" in b"".join(transport.writes):
            break
        if transport.writes and b"/stream" not in request:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.01)
    return transport


async def test_uvicorn_writes_a_whole_response_in_one_call() -> None:
    transport = await _exchange(b"GET /whole HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(transport.writes) == 1, transport.writes
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert body == b'{"ok":true}'


async def test_uvicorn_sends_a_streams_head_before_its_first_event() -> None:
    transport = await _exchange(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")  # the head alone
    assert b"data: 1" in b"".join(transport.writes[1:])


async def test_uvicorns_own_error_response_is_sent_before_it_closes() -> None:
    transport = await _exchange(b"NOT HTTP AT ALL\r\n\r\n")
    assert transport.closed
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 400 ")


async def test_switched_off_a_head_and_its_body_are_two_writes() -> None:
    """The benchmark's toggle (``tuning.one_write_per_response``) really switches it off."""
    config = Config.model_validate({"tuning": {"one_write_per_response": False}})
    transport = await _exchange(b"GET /whole HTTP/1.1\r\nHost: t\r\n\r\n", config)
    assert len(transport.writes) == 2, transport.writes
    assert transport.writes[0].startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert transport.writes[1] == b'{"ok":true}'
