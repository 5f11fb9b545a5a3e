"""HTTP/1.1 over a bare socket, for tests of framing, limits and connection handling.

An HTTP client library would refuse to send malformed requests, would read the
answer while it still sends, and would hide a reset or a close; these helpers
send exactly the given bytes and report exactly what came back.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server at ``url``."""
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_response(sock: socket.socket) -> RawResponse:
    """One response (``Content-Length`` or chunked body) from ``sock``."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, data = b"", rest
        while data:
            size_text, _, data = data.partition(b"\r\n")
            size = int(size_text, 16)
            body, data = body + data[:size], data[size + 2 :]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:length]
    return RawResponse(int(status_line.split()[1]), headers, body)


def exchange(url: str, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``request`` on a new connection and read one response."""
    with connect(url, timeout) as sock:
        sock.sendall(request)
        return read_response(sock)


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading what it sends)."""
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def assert_envelope(response: RawResponse, status: int, kind: str) -> dict[str, Any]:
    """``response`` is ``status`` with the error envelope of ``kind``, echoing its request id."""
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers.get("content-type") == "application/json", response.headers
    error: dict[str, Any] = response.json()["error"]
    assert error["kind"] == kind, error
    assert error["request_id"] == response.headers["x-request-id"], (error, response.headers)
    return error


def get(path: str, *headers: str) -> bytes:
    """A ``GET`` request for ``path`` with ``headers`` (``"Name: value"``)."""
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
