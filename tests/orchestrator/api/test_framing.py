"""What the server answers to odd bytes on the wire, sent over bare sockets.

Requests the application sees are answered in the envelope, whatever their
headers hold (Unicode digits, an upgrade handshake); a body over the limit gets
a 413 the client can read even while it goes on sending; framing the HTTP
layer cannot parse gets a 400 and a closed connection, and the server serves on.

Spec: ORCH-0009, ORCH-0014, ORCH-0017, ORCH-0160, ORCH-0161, ORCH-0162, ORCH-0200.
"""

from __future__ import annotations

import http.client
import io

import pytest

from orchestrator.server import ServerThread
from tests.orchestrator.rawhttp import (
    assert_envelope,
    closed_by_peer,
    connect,
    exchange,
    get,
    read_response,
)

TWO_MIB = 16 * 1024 * 1024


UNICODE_DIGITS = {
    "latin-1 superscript two": b"\xb2",
    "latin-1 superscript one": b"\xb9",
    "digit then superscript three": b"1\xb3",
    "arabic-indic three (UTF-8)": "\u0663".encode(),
    "fullwidth one (UTF-8)": "\uff11".encode(),
    "mathematical zero (UTF-8)": "\U0001d7d8".encode(),
}


@pytest.mark.req("ORCH-0017", "ORCH-0200")
@pytest.mark.parametrize("value", UNICODE_DIGITS.values(), ids=UNICODE_DIGITS.keys())
def test_a_last_event_id_of_unicode_digits_is_invalid_params(
    server: ServerThread, value: bytes
) -> None:
    request = b"GET /v1/tasks/task_x/stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: " + value
    response = exchange(server.url, request + b"\r\n\r\n")
    assert_envelope(response, 400, "INVALID_PARAMS")


@pytest.mark.req("ORCH-0014", "ORCH-0161")
def test_an_upgrade_request_is_answered_as_plain_http(server: ServerThread) -> None:
    handshake = (
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    )
    missing = exchange(server.url, get("/v1/tasks/task_nope/stream", *handshake))
    assert_envelope(missing, 404, "NOT_FOUND")
    health = exchange(server.url, get("/healthz", *handshake))
    assert (health.status, health.json()) == (200, {"status": "ok"})


def _chunked_upload(total: int) -> list[bytes]:
    piece = b"x" * 65536
    return [b"%x\r\n%s\r\n" % (len(piece), piece)] * (total // len(piece)) + [b"0\r\n\r\n"]


def _head(extra: str) -> bytes:
    return (
        f"POST /v1/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}\r\n\r\n"
    ).encode("latin-1")


@pytest.mark.req("ORCH-0009", "ORCH-0160")
@pytest.mark.parametrize("connection", ["keep-alive", "close"])
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_413_reaches_a_client_that_sends_its_whole_body_first(
    server: ServerThread, framing: str, connection: str
) -> None:
    """Like most clients: the whole 2 MiB body is written before the answer is read."""
    if framing == "chunked":
        head = _head(f"Connection: {connection}\r\nTransfer-Encoding: chunked")
        parts = [head, *_chunked_upload(TWO_MIB)]
    else:
        head = _head(f"Connection: {connection}\r\nContent-Length: {TWO_MIB}")
        parts = [head, *[b"x" * 65536] * (TWO_MIB // 65536)]
    for attempt in range(5):
        with connect(server.url) as sock:
            try:
                for part in parts:
                    sock.sendall(part)
                response = read_response(sock)
            except OSError as exc:
                raise AssertionError(
                    f"ORCH-0160: attempt {attempt}: the connection broke before the 413 "
                    f"was read ({exc!r})"
                ) from None
        assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


MALFORMED = {
    "content-length not a number": _head("Content-Length: 1x") + b"{}",
    "content-length unicode digit": _head("Content-Length: \xb2") + b"{}",
    "content-length twice, differing": _head("Content-Length: 2\r\nContent-Length: 3") + b"{}",
    "content-length and transfer-encoding": _head("Content-Length: 2\r\nTransfer-Encoding: chunked")
    + b"2\r\n{}\r\n0\r\n\r\n",
    "control byte in a header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
    "header without a colon": b"GET /healthz HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
    "method HTTP does not define": b"FROB /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad chunk size": _head("Transfer-Encoding: chunked") + b"zz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.req("ORCH-0017", "ORCH-0162")
@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_framing_gets_a_400_and_a_closed_connection(
    server: ServerThread, request_bytes: bytes
) -> None:
    with connect(server.url) as sock:
        sock.sendall(request_bytes)
        response = read_response(sock)
        assert response.status == 400, (response.status, response.body[:200])
        assert closed_by_peer(sock, within=5), "ORCH-0162: the connection stayed open"
    health = exchange(server.url, get("/healthz"))
    assert health.status == 200


CHUNKED_REQUESTS = {
    "admitted": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        201,
    ),
    "refused before its body is read": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: t\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        415,
    ),
}


@pytest.mark.parametrize(
    ("request_bytes", "status"), CHUNKED_REQUESTS.values(), ids=CHUNKED_REQUESTS.keys()
)
def test_a_connection_closed_after_a_chunked_request_says_so_in_its_response(
    server: ServerThread, request_bytes: bytes, status: int
) -> None:
    """The server does not keep a connection whose chunked body it does not follow: the
    response carries ``Connection: close``, so a client's pool never sends a request
    on it that would meet the close instead of an answer."""
    with connect(server.url) as sock:
        sock.sendall(request_bytes)
        response = read_response(sock)
        assert response.status == status, (response.status, response.body[:200])
        assert response.headers.get("connection") == "close", response.headers
        assert closed_by_peer(sock, within=5)


class _Unclosed(io.BytesIO):
    def close(self) -> None:
        """``http.client`` closes a response's file once its body is read: the next follows."""


class _Received:
    """Bytes already read, for ``http.client`` to parse one response after another."""

    def __init__(self, data: bytes) -> None:
        self._file = _Unclosed(data)

    def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
        return self._file


def test_a_chunked_request_pipelined_behind_another_is_answered(server: ServerThread) -> None:
    """The connection closes after the chunked request's response, not the one before it."""
    first = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    chunked, status = CHUNKED_REQUESTS["admitted"]
    with connect(server.url) as sock:
        sock.sendall(first + chunked)
        received = b""
        while chunk := sock.recv(65536):  # until the server closes
            received += chunk
    replies = _Received(received)
    health = http.client.HTTPResponse(replies)  # type: ignore[arg-type]
    health.begin()
    assert health.status == 200 and health.getheader("connection") is None, health.headers
    health.read()
    response = http.client.HTTPResponse(replies)  # type: ignore[arg-type]
    try:
        response.begin()
    except http.client.RemoteDisconnected:
        raise AssertionError(f"the pipelined chunked request got no answer: {received!r}") from None
    assert response.status == status, (response.status, response.read()[:200])
    assert response.getheader("connection") == "close", response.headers
