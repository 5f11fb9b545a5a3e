"""uvicorn's HTTP protocol, writing each response's head together with its body.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``:
two ``transport.write`` calls. Both uvloop and the stdlib loop send on the
socket at once when nothing is buffered, so every response cost two
``write()`` system calls and two TCP segments. Over loopback a segment's
whole trip (the sender's TCP stack, the receiver's softirq, waking the
client) runs in the sending call: a profile of the admission benchmark put
16 % of the server's CPU under those writes (bench/RESULTS.md, "A backlog the
collector does not scan", under "One write per response").

:class:`HttpProtocol` gives uvicorn's connection a :class:`HeadHoldingTransport`
that keeps a response's head until the next write, the body's, and sends the
two in one call. A head whose body does not follow in the same loop turn (a
stream that waits for its first event) is sent on its own at the next turn,
and before the connection closes, so nothing is delayed for longer than a
turn and the bytes keep their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD_PREFIX = b"HTTP/"
"""How every write of uvicorn's that starts a response begins (its status line)."""


class HeadHoldingTransport(asyncio.Transport):
    """A transport that sends a held response head in one call with the write after it.

    Everything else is the wrapped transport's. A body that happens to start
    with ``HTTP/`` is held the same way: it is sent at the next write or the
    next loop turn, in order, so the rule costs nothing when it misjudges.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:5] == _HEAD_PREFIX:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.flush()
        self._transport.writelines(list_of_data)

    def flush(self) -> None:
        """Send a held head now (no-op when none is held or the connection is closing)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        held = 0 if self._held is None else len(self._held)
        return self._transport.get_write_buffer_size() + held

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`HeadHoldingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadHoldingTransport(transport, asyncio.get_running_loop()))
