"""X-Request-Id: on every response, generated when absent, echoed when sent.

Beyond the conformance suite (three routes, and the 128-character bound): every
route, the stream before its first event, a 401 and a chunked 413; the generated
ids' form, unusable ids replaced, ids that differ between two servers.

Spec: ORCH-0004, ORCH-0015.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orchestrator.config import Config
from tests.orchestrator.api.envelope import assert_error, assert_request_id, iter_events
from tests.orchestrator.wire import HttpFactory, admit, new_session, post_raw, wait_terminal
from tests.support import ServeFactory, config_with


def _requests(http: httpx.Client) -> list[tuple[str, Callable[[dict[str, str]], httpx.Response]]]:
    """One request of every kind of answer: success, error, unknown route, 413, stream."""
    session_id = new_session(http)
    task_id = admit(http, session_id, max_tokens=2)["task_id"]
    wait_terminal(http, task_id)
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"

    def stream(headers: dict[str, str]) -> httpx.Response:
        with http.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers) as response:
            response.read()
            return response

    return [
        ("create session", lambda h: http.post("/v1/sessions", json={}, headers=h)),
        ("get session", lambda h: http.get(f"/v1/sessions/{session_id}", headers=h)),
        ("get task", lambda h: http.get(f"/v1/tasks/{task_id}", headers=h)),
        ("pools", lambda h: http.get("/v1/pools", headers=h)),
        ("healthz", lambda h: http.get("/healthz", headers=h)),
        ("readyz", lambda h: http.get("/readyz", headers=h)),
        ("metrics", lambda h: http.get("/metrics", headers=h)),
        ("openapi", lambda h: http.get("/openapi.json", headers=h)),
        ("400", lambda h: http.post("/v1/tasks", json={"nope": 1}, headers=h)),
        ("404 task", lambda h: http.get("/v1/tasks/task_nope", headers=h)),
        ("404 route", lambda h: http.get("/no/such/route", headers=h)),
        ("405", lambda h: http.put("/healthz", headers=h)),
        ("409", lambda h: http.delete(f"/v1/tasks/{task_id}", headers=h)),
        ("413", lambda h: post_raw(http, "/v1/sessions", big, headers=h)),
        (
            "415",
            lambda h: post_raw(http, "/v1/sessions", b"{}", content_type="text/plain", headers=h),
        ),
        ("stream", stream),
    ]


@pytest.mark.req("ORCH-0004", "ORCH-0015")
def test_every_response_gets_a_unique_generated_request_id(http: httpx.Client) -> None:
    seen: list[str] = []
    for name, send in _requests(http):
        for _ in range(2):
            response = send({})
            request_id = assert_request_id(response)
            assert request_id.isprintable(), name
            assert 8 <= len(request_id) <= 128, (name, request_id)
            seen.append(request_id)
            if response.status_code >= 400:
                assert response.json()["error"]["request_id"] == request_id, name
    assert len(set(seen)) == len(seen), "request ids repeat"


@pytest.mark.req("ORCH-0004", "ORCH-0015")
def test_a_client_request_id_is_echoed(http: httpx.Client) -> None:
    for name, send in _requests(http):
        mine = f"client-{name.replace(' ', '-')}-42"
        response = send({"X-Request-Id": mine})
        assert response.headers["X-Request-Id"] == mine, name
        if response.status_code >= 400:
            assert response.json()["error"]["request_id"] == mine, name


def test_an_unusable_client_request_id_is_replaced(http: httpx.Client) -> None:
    for bad in ("x" * 129, "tab\there", ""):
        response = http.get("/healthz", headers={"X-Request-Id": bad})
        request_id = assert_request_id(response)
        assert request_id != bad
        assert len(request_id) <= 128


@pytest.mark.req("ORCH-0004", "ORCH-0015")
def test_401_carries_a_request_id(
    serve: ServeFactory, make_config: Callable[..., Config], connect: HttpFactory
) -> None:
    http = connect(serve(make_config(auth_token="t0k")))
    response = http.get("/v1/pools")
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["request_id"].startswith("req_")
    echoed = http.get("/v1/pools", headers={"X-Request-Id": "auth-trace"})
    assert assert_error(echoed, 401, "UNAUTHORIZED")["request_id"] == "auth-trace"


@pytest.mark.req("ORCH-0004")
def test_generated_ids_differ_between_servers(
    serve: ServeFactory, connect: HttpFactory, tmp_path: Path
) -> None:
    # Two servers (or one restarted) must not hand out the same ids.
    seen = set()
    for n in range(2):
        http = connect(serve(config_with(str(tmp_path / f"server-{n}.db"))))
        ids = [assert_request_id(http.get("/healthz")) for _ in range(3)]
        assert len(set(ids)) == 3
        assert seen.isdisjoint(ids), ids
        seen.update(ids)


@pytest.mark.req("ORCH-0015")
def test_a_chunked_413_carries_the_request_id(http: httpx.Client) -> None:
    def body() -> object:
        for _ in range(40):
            yield b" " * 65536

    response = http.post(
        "/v1/tasks",
        content=body(),  # type: ignore[arg-type]
        headers={"Content-Type": "application/json", "X-Request-Id": "big-one"},
    )
    assert assert_error(response, 413, "PAYLOAD_TOO_LARGE")["request_id"] == "big-one"


@pytest.mark.parametrize("sent", [None, "stream-trace-1"])
@pytest.mark.req("ORCH-0004")
def test_a_live_stream_carries_the_request_id_before_any_event(
    http: httpx.Client, sent: str | None
) -> None:
    task_id = admit(http, new_session(http), max_tokens=3)["task_id"]
    headers = {"X-Request-Id": sent} if sent else {}
    with http.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers) as response:
        request_id = assert_request_id(response)
        if sent:
            assert request_id == sent
        assert [event for _, event, _ in iter_events(response)][-1] == "end"
