"""One write per response: a response's head waits for its body, and the two go out together.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two
``transport.write`` calls, so two ``write()`` system calls and two TCP
segments for a response that fits in one (docs/design/performance.md).
:func:`coalescing` gives uvicorn's protocol a :class:`CoalescingTransport`
that keeps a response's head until the next write, the body's, and sends the
two in one call. A head whose body does not follow in the same loop turn (a
stream that waits for its first event) is sent on its own at the next turn,
and before the connection closes: nothing waits longer than a loop turn, and
the bytes keep their order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, cast

_HEAD_PREFIX = b"HTTP/"
"""How every write of uvicorn's that starts a response begins (its status line)."""


class CoalescingTransport(asyncio.Transport):
    """A transport that sends a response's head in one call with the write after it.

    Everything else is the wrapped transport's. A body that happens to start
    with ``HTTP/`` is kept back the same way: it is sent at the next write or
    the next loop turn, in order, so the rule costs nothing when it misjudges.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:5] == _HEAD_PREFIX:
            self._head = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.flush()
        self._transport.writelines(list_of_data)

    def flush(self) -> None:
        """Send a kept head now (nothing when none is kept or the connection is closing)."""
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
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
        kept = 0 if self._head is None else len(self._head)
        return self._transport.get_write_buffer_size() + kept

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


def coalescing(inner: Callable[..., asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A protocol class for uvicorn: ``inner`` writing through a :class:`CoalescingTransport`.

    Composition through the ``asyncio.Protocol`` interface only: ``inner`` is
    uvicorn's own HTTP protocol class, and it sees an ordinary transport.
    """

    class CoalescingProtocol(asyncio.Protocol):
        def __init__(self, **kwargs: Any) -> None:
            self._inner = inner(**kwargs)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            coalesced = CoalescingTransport(
                cast(asyncio.Transport, transport), asyncio.get_running_loop()
            )
            self._inner.connection_made(coalesced)

        def data_received(self, data: bytes) -> None:
            self._inner.data_received(data)

        def eof_received(self) -> bool | None:
            return self._inner.eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            self._inner.connection_lost(exc)

        def pause_writing(self) -> None:
            self._inner.pause_writing()

        def resume_writing(self) -> None:
            self._inner.resume_writing()

    return CoalescingProtocol
