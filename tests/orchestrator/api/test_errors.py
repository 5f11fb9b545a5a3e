"""The error answers of orchestratord beyond what the conformance suite certifies.

The conformance suite (``harness/conformance/``, run against orchestratord in the
same CI run) certifies the spec's error table: each status with its kind, the
envelope, the backpressure headers, the request bounds on both sides. This module
keeps what is orchestratord's own: the messages (they name the offending field,
id, media type or method), the detail fields it adds (``state`` on a 409,
``pools`` on ``/readyz``), FastAPI's routes it must not expose, chunked and
unlabelled bodies, the request routes conformance does not probe, an exact
session expiry on the manual clock, and a 500 from an injected fault. Each
assertion goes through ``envelope.assert_error`` (envelope, retriable flag,
request id, backpressure headers).

Spec: ORCH-0002, ORCH-0003, ORCH-0007, ORCH-0009, ORCH-0010, ORCH-0011, ORCH-0012,
ORCH-0013, ORCH-0014, ORCH-0015, ORCH-0016, ORCH-0018, ORCH-0019, ORCH-0021, ORCH-0023,
ORCH-0024, ORCH-0025, ORCH-0030, ORCH-0031, ORCH-0038, ORCH-0039, ORCH-0040, ORCH-0041,
ORCH-0046, ORCH-0047, ORCH-0048, ORCH-0049, ORCH-0050, ORCH-0058, ORCH-0067, ORCH-0069,
ORCH-0094, ORCH-0095, ORCH-0096, ORCH-0097, ORCH-0098, ORCH-0099, ORCH-0119, ORCH-0122,
ORCH-0129, ORCH-0130.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.runtime import ManualClock
from orchestrator.server import ServerThread
from tests.orchestrator.api.envelope import assert_error, assert_task_error
from tests.orchestrator.wire import (
    HOLD_TOKENS,
    HttpFactory,
    admit,
    get_task,
    new_session,
    post_json,
    post_raw,
    slow_pool,
    submit,
    task_body,
    wait_state,
    wait_terminal,
)
from tests.support import ConfigFactory, ServeFactory, pool

TWO_MIB = 2 * 1024 * 1024

# ---------------------------------------------------------------- 400 INVALID_PARAMS

# (field overrides of a valid task body, the field the message must name)
BAD_TASK_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level field", {"bogus": 1}, "bogus"),
    ("unknown params field", {"params": {"seed": 1, "beam_width": 4}}, "beam_width"),
    ("prompt not a string", {"prompt": 5}, "prompt"),
    ("prompt null", {"prompt": None}, "prompt"),
    ("session_id not a string", {"session_id": 5}, "session_id"),
    ("max_tokens a string", {"max_tokens": "5"}, "max_tokens"),
    ("max_tokens a fraction", {"max_tokens": 2.5}, "max_tokens"),
    ("max_tokens a bool", {"max_tokens": True}, "max_tokens"),
    ("seed a bool", {"params": {"seed": False}}, "seed"),
    ("seed a string", {"params": {"seed": "1"}}, "seed"),
    ("temperature a bool", {"params": {"temperature": True}}, "temperature"),
    ("temperature a string", {"params": {"temperature": "1.0"}}, "temperature"),
    ("priority unknown", {"priority": "urgent"}, "priority"),
    ("priority not a string", {"priority": 1}, "priority"),
    ("pool not a string", {"pool": ["default"]}, "pool"),
    ("determinism unknown", {"params": {"determinism": "maybe"}}, "determinism"),
    ("params not an object", {"params": "strict"}, "params"),
    ("max_tokens 0", {"max_tokens": 0}, "max_tokens"),
    ("max_tokens 4097", {"max_tokens": 4097}, "max_tokens"),
    ("max_tokens negative", {"max_tokens": -1}, "max_tokens"),
    ("temperature below 0", {"params": {"temperature": -0.1}}, "temperature"),
    ("temperature above 2", {"params": {"temperature": 2.01}}, "temperature"),
    ("top_p 0", {"params": {"top_p": 0}}, "top_p"),
    ("top_p above 1", {"params": {"top_p": 1.01}}, "top_p"),
    ("seed negative", {"params": {"seed": -1}}, "seed"),
    ("seed 2**63", {"params": {"seed": 2**63}}, "seed"),
    ("sampler_profile_version empty", {"params": {"sampler_profile_version": ""}}, "sampler"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("prompt over 32768 chars", {"prompt": "x" * 32_769}, "prompt"),
    ("strict without seed", {"params": {"determinism": "strict"}}, "seed"),
]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [pytest.param(o, n, id=i) for i, o, n in BAD_TASK_FIELDS],
)
@pytest.mark.req(
    "ORCH-0002",
    "ORCH-0003",
    "ORCH-0014",
    "ORCH-0015",
    "ORCH-0019",
    "ORCH-0024",
    "ORCH-0038",
    "ORCH-0039",
    "ORCH-0040",
    "ORCH-0041",
)
def test_invalid_task_fields_are_400(
    http: httpx.Client, overrides: dict[str, Any], named: str
) -> None:
    body = task_body(new_session(http)) | overrides
    error = assert_error(post_json(http, "/v1/tasks", body), 400, "INVALID_PARAMS")
    assert named in error["message"], error


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"ttl_seconds": 1.5}, id="ttl a fraction"),
        pytest.param({"ttl_seconds": -5}, id="ttl negative"),
        pytest.param({"metadata": []}, id="metadata a list"),
        pytest.param({"metadata": "x"}, id="metadata a string"),
        pytest.param([], id="body a list"),
        pytest.param("session", id="body a string"),
    ],
)
@pytest.mark.req("ORCH-0002", "ORCH-0003", "ORCH-0025")
def test_invalid_session_bodies_are_400(http: httpx.Client, body: Any) -> None:
    assert_error(post_json(http, "/v1/sessions", body), 400, "INVALID_PARAMS")


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/sessions", "POST"), ("/v1/tasks", "POST"), ("/v1/admin/routing", "PUT")],
)
@pytest.mark.parametrize(
    "content", [b"{bad", b'{"a": 1,}', b"{'a': 1}", b'{"a":', b"nul", b"\xff\xfe{}"]
)
@pytest.mark.req("ORCH-0002")
def test_malformed_json_is_400(http: httpx.Client, path: str, method: str, content: bytes) -> None:
    response = post_raw(http, path, content, method=method)
    assert_error(response, 400, "INVALID_PARAMS")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3", "0x10", "9" * 19, "1, 2"])
def test_bad_last_event_id_is_400(http: httpx.Client, value: str) -> None:
    task_id = admit(http, new_session(http))["task_id"]
    response = http.get(f"/v1/tasks/{task_id}/stream", headers={"Last-Event-ID": value})
    assert_error(response, 400, "INVALID_PARAMS", message="Last-Event-ID")


# ---------------------------------------------------------------- 401 UNAUTHORIZED

TOKEN = "s3cr3t-token"


@pytest.fixture
def auth_server(serve: ServeFactory, make_config: ConfigFactory) -> ServerThread:
    return serve(make_config(auth_token=TOKEN, pools=[slow_pool()]))


@pytest.fixture
def authed(auth_server: ServerThread, connect: HttpFactory) -> httpx.Client:
    return connect(auth_server, token=TOKEN)


@pytest.fixture
def resources(authed: httpx.Client) -> Iterator[dict[str, str]]:
    """A session and a running task, created with the right token."""
    session_id = new_session(authed)
    task_id = admit(authed, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    wait_state(authed, task_id, {"running"})
    yield {"session_id": session_id, "task_id": task_id}
    authed.delete(f"/v1/tasks/{task_id}")


# (method, path template, JSON body or None, status with the right token)
V1_ROUTES: list[tuple[str, str, Any, int]] = [
    ("POST", "/v1/sessions", {}, 201),
    ("GET", "/v1/sessions/{session_id}", None, 200),
    ("DELETE", "/v1/sessions/{session_id}", None, 204),
    ("POST", "/v1/tasks", {"session_id": "{session_id}", "prompt": "p", "max_tokens": 1}, 202),
    ("GET", "/v1/tasks/{task_id}", None, 200),
    ("DELETE", "/v1/tasks/{task_id}", None, 200),
    ("GET", "/v1/tasks/{task_id}/stream", None, 200),
    ("GET", "/v1/pools", None, 200),
    ("GET", "/v1/pools/default", None, 200),
    ("GET", "/v1/admin/routing", None, 200),
    ("PUT", "/v1/admin/routing", {"fallback_mode": "intelligent_pacing"}, 200),
    ("GET", "/v1/no-such-route", None, 404),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "body", "ok"),
    [pytest.param(*route, id=f"{route[0]} {route[1]}") for route in V1_ROUTES],
)
@pytest.mark.req("ORCH-0007")
def test_every_v1_route_requires_the_bearer_token(
    auth_server: ServerThread,
    connect: HttpFactory,
    resources: dict[str, str],
    method: str,
    path: str,
    body: Any,
    ok: int,
) -> None:
    url, payload = _fill(path, resources), _fill(body, resources)
    anonymous = connect(auth_server)
    # No header, a wrong token, another scheme and an empty token are conformance's
    # (test_contract_auth); these are the near misses orchestratord refuses too.
    for headers in (
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"bearer  {TOKEN}"},
    ):
        response = anonymous.request(method, url, json=payload, headers=headers)
        assert_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if path.endswith("/stream"):
        with connect(auth_server, token=TOKEN).stream("GET", url) as response:
            assert response.status_code == ok
        return
    response = connect(auth_server, token=TOKEN).request(method, url, json=payload)
    assert response.status_code == ok, response.text


# ---------------------------------------------------------------- 404 NOT_FOUND


@pytest.mark.req("ORCH-0016", "ORCH-0030", "ORCH-0046", "ORCH-0058", "ORCH-0069", "ORCH-0119")
def test_messages_name_what_is_missing_or_ended(http: httpx.Client) -> None:
    assert_error(http.get("/v1/sessions/sess_nope"), 404, "NOT_FOUND", message="sess_nope")
    unknown_session = post_json(http, "/v1/tasks", task_body("sess_nope"))
    assert_error(unknown_session, 404, "NOT_FOUND", message="sess_nope")
    for method, path in (
        ("GET", "/v1/tasks/task_nope"),
        ("DELETE", "/v1/tasks/task_nope"),
        ("GET", "/v1/tasks/task_nope/stream"),
    ):
        assert_error(http.request(method, path), 404, "NOT_FOUND", message="task_nope")
    session_id = new_session(http)
    body = task_body(session_id, pool="gpu-xl")
    assert_error(post_json(http, "/v1/tasks", body), 404, "NOT_FOUND", message="gpu-xl")
    assert_error(http.get("/v1/pools/gpu-xl"), 404, "NOT_FOUND", message="gpu-xl")
    # A refused cancel says the task ended, and in which state (a detail field, ORCH-0016).
    task_id = admit(http, session_id, max_tokens=2)["task_id"]
    assert wait_terminal(http, task_id)["state"] == "completed"
    error = assert_error(http.delete(f"/v1/tasks/{task_id}"), 409, "CONFLICT", message="ended")
    assert error.get("state") == "completed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1"),
        ("GET", "/v1/"),
        ("POST", "/v2/tasks"),
        ("GET", "/v1/tasks/x/stream/more"),
        ("DELETE", "/v1/sessions/a/b"),
        ("GET", "/docs"),
    ],
)
@pytest.mark.req("ORCH-0013")
def test_unknown_route_is_404(http: httpx.Client, method: str, path: str) -> None:
    assert_error(http.request(method, path), 404, "NOT_FOUND")


# ---------------------------------------------------------------- 405 METHOD_NOT_ALLOWED


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/tasks/x", {"GET", "DELETE"}),
        ("PATCH", "/v1/sessions", {"POST"}),
        ("GET", "/v1/tasks", {"POST"}),
        ("POST", "/v1/admin/routing", {"GET", "PUT"}),
    ],
)
@pytest.mark.req("ORCH-0011", "ORCH-0012")
def test_wrong_method_is_405(http: httpx.Client, method: str, path: str, allowed: set[str]) -> None:
    response = http.request(method, path)
    assert_error(response, 405, "METHOD_NOT_ALLOWED", message=method)
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


# ---------------------------------------------------------------- 410 SESSION_EXPIRED


@pytest.mark.req("ORCH-0031", "ORCH-0047")
def test_expired_session_is_410(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    clock = ManualClock()
    http = connect(serve(make_config(), clock=clock))
    session_id = new_session(http, ttl_seconds=5)
    clock.advance(4_999)
    assert http.get(f"/v1/sessions/{session_id}").json()["ttl_remaining_ms"] == 1
    assert submit(http, session_id).status_code == 202
    clock.advance(1)
    assert_error(http.get(f"/v1/sessions/{session_id}"), 410, "SESSION_EXPIRED", message=session_id)
    assert_error(submit(http, session_id), 410, "SESSION_EXPIRED", message=session_id)
    clock.advance(3_600_000)
    assert_error(http.get(f"/v1/sessions/{session_id}"), 410, "SESSION_EXPIRED")


# ---------------------------------------------------------------- 413 PAYLOAD_TOO_LARGE


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"prompt": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/sessions", "POST"), ("/v1/tasks", "POST"), ("/v1/admin/routing", "PUT")],
)
@pytest.mark.req("ORCH-0009")
def test_two_mib_body_is_413(http: httpx.Client, path: str, method: str) -> None:
    big = b'{"prompt": "' + b"x" * TWO_MIB + b'"}'
    response = post_raw(http, path, big, method=method)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/sessions", "POST"), ("/v1/tasks", "POST"), ("/v1/admin/routing", "PUT")],
)
@pytest.mark.req("ORCH-0009")
def test_two_mib_chunked_body_is_413(http: httpx.Client, path: str, method: str) -> None:
    response = http.request(
        method, path, content=_chunks(TWO_MIB), headers={"Content-Type": "application/json"}
    )
    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_chunked_body_under_the_limit_is_served(http: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"ttl_seconds"'
        yield b": 77}"

    response = http.post(
        "/v1/sessions", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["ttl_seconds"] == 77


# ---------------------------------------------------------------- 415 UNSUPPORTED_MEDIA_TYPE


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/sessions", "POST"), ("/v1/tasks", "POST"), ("/v1/admin/routing", "PUT")],
)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
@pytest.mark.req("ORCH-0010")
def test_non_json_body_is_415(
    http: httpx.Client, path: str, method: str, content_type: str
) -> None:
    response = post_raw(http, path, b'{"ttl_seconds": 5}', content_type=content_type, method=method)
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", message=content_type.split(";")[0])


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/sessions", "POST"), ("/v1/tasks", "POST"), ("/v1/admin/routing", "PUT")],
)
@pytest.mark.req("ORCH-0010")
def test_a_body_without_content_type_is_415(http: httpx.Client, path: str, method: str) -> None:
    response = post_raw(http, path, b'{"ttl_seconds": 5}', content_type=None, method=method)
    assert "Content-Type" not in response.request.headers
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", message="no Content-Type")

    def chunked() -> Iterator[bytes]:
        yield b"{}"

    response = http.request(method, path, content=chunked())
    assert "Content-Type" not in response.request.headers
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_an_empty_post_needs_no_content_type(http: httpx.Client) -> None:
    response = post_raw(http, "/v1/sessions", b"", content_type=None)
    assert response.status_code == 201, response.text
    assert_error(post_raw(http, "/v1/tasks", b"", content_type=None), 400, "INVALID_PARAMS")


def test_json_media_type_variants_are_accepted(http: httpx.Client) -> None:
    for content_type in (
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/vnd.x+json",
    ):
        response = post_raw(http, "/v1/sessions", b"{}", content_type=content_type)
        assert response.status_code == 201, (content_type, response.text)


# ---------------------------------------------------------------- 429


def _fill_queue(http: httpx.Client, session_id: str, priority: str = "interactive") -> list[str]:
    """One task running on the only slot, then two queued: a capacity-2 queue is full."""
    first = admit(http, session_id, "running", max_tokens=HOLD_TOKENS, priority=priority)["task_id"]
    wait_state(http, first, {"running"})
    queued = [
        admit(http, session_id, f"queued {i}", max_tokens=HOLD_TOKENS, priority=priority)
        for i in range(2)
    ]
    assert [t["queue_position"] for t in queued] == [0, 1]
    return [first] + [t["task_id"] for t in queued]


@pytest.mark.req("ORCH-0021", "ORCH-0023", "ORCH-0050", "ORCH-0067", "ORCH-0094", "ORCH-0095")
def test_full_queue_with_policy_reject_is_429_admission_reject(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool(queue_capacity=2)])))
    session_id = new_session(http)
    tasks = _fill_queue(http, session_id)
    for priority in ("interactive", "batch"):
        response = submit(http, session_id, priority=priority)
        assert_error(response, 429, "ADMISSION_REJECT", message="full")
    counts = http.get(f"/v1/sessions/{session_id}").json()["tasks"]
    assert counts == {"queued": 2, "running": 1, "terminal": 0}  # ORCH-0050
    # A cancelled queued task frees its place at once (ORCH-0067).
    assert http.delete(f"/v1/tasks/{tasks[2]}").status_code == 200
    tasks[2] = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    assert_error(submit(http, session_id), 429, "ADMISSION_REJECT")
    for task_id in tasks:
        assert http.delete(f"/v1/tasks/{task_id}").status_code == 200


@pytest.mark.req("ORCH-0021", "ORCH-0096", "ORCH-0097", "ORCH-0098", "ORCH-0099")
def test_full_drop_lru_queue_with_nothing_evictable_is_429(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    config = make_config(pools=[slow_pool(queue_capacity=2, overflow_policy="drop_lru")])
    http = connect(serve(config))
    session_id = new_session(http)
    running, oldest, newest = _fill_queue(http, session_id)
    # A batch newcomer may only evict batch work, and only interactive work is queued.
    assert_error(submit(http, session_id, priority="batch"), 429, "QUEUE_FULL_DROP_LRU")
    assert get_task(http, oldest)["state"] == "queued"
    # An interactive newcomer evicts the oldest queued interactive task instead.
    newcomer = admit(http, session_id, max_tokens=HOLD_TOKENS)
    dropped = get_task(http, oldest)
    assert dropped["state"] == "dropped"
    assert_task_error(dropped["error"], "QUEUE_FULL_DROP_LRU")
    assert get_task(http, newest)["state"] == "queued"
    for task_id in (running, newest, newcomer["task_id"]):
        assert http.delete(f"/v1/tasks/{task_id}").status_code == 200


# ---------------------------------------------------------------- 503


@pytest.mark.req("ORCH-0021", "ORCH-0048", "ORCH-0050", "ORCH-0122", "ORCH-0129", "ORCH-0130")
def test_warming_pool_is_503_pool_unready(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    replica = {"replica_id": "r1", "warmup_ms": 60_000}
    http = connect(serve(make_config(pools=[pool("default", replicas=[replica])])))
    session_id = new_session(http)
    response = submit(http, session_id)
    assert_error(response, 503, "POOL_UNREADY", message="warming")
    assert http.get(f"/v1/sessions/{session_id}").json()["tasks"] == {
        "queued": 0,
        "running": 0,
        "terminal": 0,
    }
    # The estimate of the remaining warm-up (about 60 s) is what the client is told to wait.
    assert 30 <= int(response.headers["Retry-After"]) <= 61
    readyz = http.get("/readyz")
    error = assert_error(readyz, 503, "POOL_UNREADY", message="default")
    assert error["pools"] == {"default": False}
    assert http.get("/healthz").status_code == 200
    (listed,) = http.get("/v1/pools").json()["pools"]
    assert listed["ready"] is False
    assert [r["state"] for r in listed["replicas"]] == ["warming"]


@pytest.mark.req("ORCH-0049", "ORCH-0122", "ORCH-0130")
def test_pool_without_healthy_replica_is_503_pool_unavailable(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    down = [{"replica_id": f"r{i}", "faults": {"unavailable": True}} for i in (1, 2)]
    http = connect(serve(make_config(pools=[pool("default", replicas=down)])))
    assert_error(submit(http, new_session(http)), 503, "POOL_UNAVAILABLE", message="default")
    assert_error(http.get("/readyz"), 503, "POOL_UNREADY")
    (listed,) = http.get("/v1/pools").json()["pools"]
    assert listed["ready"] is False
    assert {r["state"] for r in listed["replicas"]} == {"down"}


@pytest.mark.req("ORCH-0049", "ORCH-0130")
def test_one_unready_pool_fails_only_its_own_admissions(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    down = [{"replica_id": "r1", "faults": {"unavailable": True}}]
    config = make_config(pools=[pool("default", replicas=1), pool("broken", replicas=down)])
    http = connect(serve(config))
    session_id = new_session(http)
    assert_error(submit(http, session_id, pool="broken"), 503, "POOL_UNAVAILABLE")
    task_id = admit(http, session_id, pool="default")["task_id"]
    assert wait_terminal(http, task_id)["state"] == "completed"
    assert http.get("/readyz").json()["error"]["pools"] == {"default": True, "broken": False}


# ---------------------------------------------------------------- 500 INTERNAL


@pytest.mark.req("ORCH-0015", "ORCH-0018")
def test_unexpected_exception_is_500_internal_and_the_server_keeps_serving(
    server: ServerThread, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = new_session(http)
    task_id = admit(http, session_id)["task_id"]
    orchestrator = server.app.state.orchestrator

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected failure")

    with monkeypatch.context() as patch:
        patch.setattr(orchestrator, "get_task", boom)
        response = http.get(f"/v1/tasks/{task_id}", headers={"X-Request-Id": "trace-500"})
        error = assert_error(response, 500, "INTERNAL")
        assert error["request_id"] == "trace-500"
        assert "injected" not in response.text  # no internals leak to the client
        patch.setattr(orchestrator, "admit", boom)
        assert_error(submit(http, session_id), 500, "INTERNAL")
    # Same keep-alive connection, same server: business as usual.
    assert wait_terminal(http, task_id)["state"] == "completed"
    assert http.get("/v1/pools").status_code == 200
    assert admit(http, session_id)["state"] == "queued"
