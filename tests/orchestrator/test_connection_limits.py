"""Connection limits an operator sets: header and idle timeouts, head size, connection count.

In-process servers (real uvicorn on loopback) with small limits, driven over
bare sockets; the open-file limit and the access log need a real ``orchq
serve`` process.

Spec: ORCH-0021, ORCH-0163, ORCH-0164, ORCH-0165, ORCH-0166, ORCH-0167, ORCH-0176,
ORCH-0177, ORCH-0178.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.server import ServerThread
from tests.orchestrator.rawhttp import (
    assert_envelope,
    closed_by_peer,
    connect,
    exchange,
    get,
    read_response,
)
from tests.orchestrator.serve_process import StartProcess, write_config
from tests.support import ConfigFactory, ServeFactory, config_with, pool

SWEEP_SLACK_S = 2.0
"""How late a timeout may close a connection: the limits are checked about once a second."""


@pytest.mark.req("ORCH-0163")
def test_a_request_head_that_trickles_in_is_cut_at_the_header_timeout(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    server = serve(make_config(header_timeout_s=1))
    with connect(server.url) as slow, connect(server.url) as silent:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 1 + SWEEP_SLACK_S:
            try:
                slow.sendall(b"X")  # one byte of a header every 0.2 s, never the end
            except OSError:
                closed = True
                break
            if closed_by_peer(slow, within=0.2):
                closed = True
                break
        assert closed, "ORCH-0163: a request head trickling in kept its connection open"
        assert closed_by_peer(silent, within=SWEEP_SLACK_S), (
            "ORCH-0163: a connection that never sent a request head stayed open"
        )
    assert exchange(server.url, get("/healthz")).status == 200


@pytest.mark.req("ORCH-0163", "ORCH-0164")
def test_an_idle_keep_alive_connection_is_closed(
    serve: ServeFactory, make_config: ConfigFactory, tmp_path: Path
) -> None:
    server = serve(make_config(keep_alive_timeout_s=1, header_timeout_s=30))
    with connect(server.url) as sock:
        sock.sendall(get("/healthz"))
        assert read_response(sock).status == 200
        started = time.monotonic()
        assert closed_by_peer(sock, within=1 + SWEEP_SLACK_S), (
            "ORCH-0164: an idle keep-alive connection stayed open"
        )
        assert time.monotonic() - started >= 0.9
    # A second request head that trickles in after a response is cut too.
    second = config_with(str(tmp_path / "second.db"), keep_alive_timeout_s=30, header_timeout_s=1)
    server = serve(second)
    with connect(server.url) as sock:
        sock.sendall(get("/healthz"))
        assert read_response(sock).status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert closed_by_peer(sock, within=1 + SWEEP_SLACK_S), (
            "ORCH-0163: a slow second request head kept its connection open"
        )


@pytest.mark.req("ORCH-0165")
@pytest.mark.parametrize("complete", [True, False], ids=["whole head", "head never ends"])
def test_a_request_head_over_the_limit_gets_431(
    serve: ServeFactory, make_config: ConfigFactory, complete: bool
) -> None:
    server = serve(make_config(max_header_bytes=8192))
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000
    with connect(server.url) as sock:
        sock.sendall(head + (b"\r\n\r\n" if complete else b""))
        response = read_response(sock)
        assert_envelope(response, 431, "HEADERS_TOO_LARGE")
        assert closed_by_peer(sock, within=5), "ORCH-0165: the connection stayed open"
    fits = get("/healthz", "X-Big: " + "a" * 7000)
    assert exchange(server.url, fits).status == 200


def _streaming_tasks(server: ServerThread, count: int) -> list[str]:
    with OrchClient(server.url) as client:
        session = client.create_session().session_id
        return [
            client.submit_task(session, f"slow {i}", max_tokens=50).task_id for i in range(count)
        ]


@contextlib.contextmanager
def _open_streams(server: ServerThread, task_ids: list[str]) -> Iterator[list[socket.socket]]:
    """One connection per task, each in the middle of its stream response."""
    with contextlib.ExitStack() as stack:
        socks = []
        for task_id in task_ids:
            sock = stack.enter_context(connect(server.url))
            sock.sendall(get(f"/v1/tasks/{task_id}/stream"))
            assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "stream did not start"
            socks.append(sock)
        yield socks


@pytest.mark.req("ORCH-0021", "ORCH-0166", "ORCH-0167", "ORCH-0179")
def test_at_the_connection_limit_requests_get_503_and_health_is_still_answered(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    replica = {"replica_id": "r1", "slots": 8, "token_delay_ms": 1000}
    server = serve(make_config(max_connections=8, pools=[pool("default", replicas=[replica])]))
    tasks = _streaming_tasks(server, 8)
    with _open_streams(server, tasks):
        busy = exchange(server.url, get("/v1/pools"))
        assert_envelope(busy, 503, "SERVER_BUSY")
        assert busy.headers["retry-after"].isdecimal() and busy.headers["x-backoff-ms"].isdecimal()
        assert 1000 <= int(busy.headers["x-backoff-ms"]) <= 1250, (
            f"ORCH-0179: SERVER_BUSY suggests 1000 ms plus jitter; got {busy.headers}"
        )
        assert busy.headers.get("connection") == "close", busy.headers
        for path in ("/healthz", "/readyz", "/metrics"):
            assert exchange(server.url, get(path)).status == 200, (
                f"ORCH-0167: {path} was not answered at the connection limit"
            )
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for _ in range(20):  # the streams' connections are gone: room again
            if http.get("/v1/pools").status_code == 200:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the server stayed busy after its connections closed")


@pytest.mark.req("ORCH-0166")
def test_at_the_connection_limit_the_oldest_idle_connection_makes_room(
    serve: ServeFactory, make_config: ConfigFactory
) -> None:
    server = serve(make_config(max_connections=8, header_timeout_s=60))
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(connect(server.url)) for _ in range(8)]
        time.sleep(0.2)
        assert exchange(server.url, get("/v1/pools")).status == 200
        assert closed_by_peer(idle[0], within=2), "ORCH-0166: the oldest idle connection stayed"
        assert not closed_by_peer(idle[-1], within=0.2)


# ---------------------------------------------------------------- a real process


def _limits(pid: int) -> dict[str, tuple[str, str]]:
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        found[name] = (soft, hard)
    return found


def _open_file_limit(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "orchq.yaml",
        {"pools": [{"pool_id": "default", "replicas": [{"replica_id": "r1"}]}]},
    )


@pytest.mark.slow
@pytest.mark.req("ORCH-0176")
def test_serve_raises_the_soft_open_file_limit_to_the_hard_one(
    tmp_path: Path, serve_process: StartProcess, small_config: Path
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-file limit is {hard}: nothing to raise")
    server = serve_process(
        small_config, tmp_path / "orchq.db", preexec_fn=_open_file_limit(256, hard)
    )
    soft, after = _limits(server.pid)["Max open files"]
    assert soft == after, f"ORCH-0176: soft open-file limit {soft}, hard {after}"


@pytest.mark.slow
@pytest.mark.req("ORCH-0166", "ORCH-0167", "ORCH-0177")
def test_idle_connections_beyond_the_open_file_limit_leave_the_server_reachable(
    tmp_path: Path, serve_process: StartProcess, small_config: Path
) -> None:
    server = serve_process(
        small_config, tmp_path / "orchq.db", preexec_fn=_open_file_limit(256, 256)
    )
    server.wait_for_output("max_connections")
    with contextlib.ExitStack() as stack:
        for _ in range(300):  # more than the server has file descriptors for
            stack.enter_context(connect(server.url))
        time.sleep(0.5)
        for path in ("/healthz", "/v1/pools"):
            response = httpx.get(f"{server.url}{path}", timeout=10)
            assert response.status_code == 200, (path, response.status_code, response.text)


@pytest.mark.slow
@pytest.mark.req("ORCH-0178")
def test_access_log_logs_each_request(
    tmp_path: Path, serve_process: StartProcess, small_config: Path
) -> None:
    server = serve_process(small_config, tmp_path / "orchq.db", args=["--access-log"])
    httpx.get(f"{server.url}/healthz", timeout=10)
    httpx.get(f"{server.url}/v1/tasks/nope", timeout=10)
    assert "200" in server.wait_for_output('"GET /healthz HTTP/1.1"')
    assert "404" in server.wait_for_output('"GET /v1/tasks/nope HTTP/1.1"')
