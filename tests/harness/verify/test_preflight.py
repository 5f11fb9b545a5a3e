"""``orchq verify --target``: targets that cannot be verified are refused in one line, exit 2."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.plugin.target import ServeFactory, Target


class _NotOrchQueue(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and a body that is no OrchQueue v1 document."""

    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def foreign_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotOrchQueue)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    return result.exit_code, result.output


def _assert_one_line_refusal(code: int, output: str, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], output


def test_unreachable_target() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, output = _verify("--target", url)
    _assert_one_line_refusal(code, output, "cannot reach", url)


def test_server_that_is_not_orchqueue(foreign_server: str) -> None:
    code, output = _verify("--target", foreign_server)
    _assert_one_line_refusal(code, output, "is not an OrchQueue v1 server", "/healthz")


def test_missing_and_wrong_token(orch_serve: ServeFactory) -> None:
    target: Target = orch_serve(auth_token="right")
    code, output = _verify("--target", target.url)
    _assert_one_line_refusal(code, output, "needs a token")
    code, output = _verify("--target", target.url, "--token", "wrong")
    _assert_one_line_refusal(code, output, "wrong token", "401")


def test_unknown_suite_is_a_usage_error() -> None:
    code, output = _verify("--suites", "contract,nope")
    _assert_one_line_refusal(code, output, "unknown suite nope")
