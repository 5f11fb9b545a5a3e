"""Response bodies are JSON everywhere but the stream, /metrics and a 204; backoff is jittered.

Beyond the conformance suite (which can only see that the jitter exists): the
content type of every route, and the jitter's exact 0..250 ms range.

Spec: ORCH-0001, ORCH-0022.
"""

from __future__ import annotations

import json

import httpx
import pytest

from orchestrator.vocabulary import MAX_BACKOFF_JITTER_MS
from tests.orchestrator.wire import (
    HOLD_TOKENS,
    HttpFactory,
    admit,
    new_session,
    post_raw,
    slow_pool,
    submit,
    wait_state,
    wait_terminal,
)
from tests.support import ConfigFactory, ServeFactory, pool


def assert_json_body(response: httpx.Response, what: str) -> None:
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == "application/json", (
        f"ORCH-0001: {what} answered {response.status_code} with Content-Type {media!r}"
    )
    try:
        json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(
            f"ORCH-0001: {what}: body is not JSON: {response.text[:200]!r}"
        ) from exc


@pytest.mark.req("ORCH-0001")
def test_every_answer_but_stream_metrics_and_204_is_json(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool(queue_capacity=1)])))
    session_id = new_session(http)
    done = admit(http, session_id, max_tokens=1)["task_id"]
    wait_terminal(http, done)
    running = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    wait_state(http, running, {"running"})
    admit(http, session_id, max_tokens=HOLD_TOKENS)  # fills the queue (capacity 1)
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    answers: list[tuple[str, httpx.Response]] = [
        ("POST /v1/sessions", http.post("/v1/sessions", json={})),
        ("GET /v1/sessions/{id}", http.get(f"/v1/sessions/{session_id}")),
        ("POST /v1/tasks 429", submit(http, session_id)),
        ("GET /v1/tasks/{id}", http.get(f"/v1/tasks/{done}")),
        ("DELETE /v1/tasks/{id}", http.delete(f"/v1/tasks/{running}")),
        ("DELETE /v1/tasks/{id} 409", http.delete(f"/v1/tasks/{done}")),
        ("GET /v1/pools", http.get("/v1/pools")),
        ("GET /v1/pools/{id}", http.get("/v1/pools/default")),
        ("GET /v1/admin/routing", http.get("/v1/admin/routing")),
        ("PUT /v1/admin/routing", http.put("/v1/admin/routing", json={"fallback_mode": "x"})),
        ("GET /healthz", http.get("/healthz")),
        ("GET /readyz", http.get("/readyz")),
        ("400", http.post("/v1/tasks", json={"nope": 1})),
        ("404", http.get("/v1/nope")),
        ("404 stream", http.get("/v1/tasks/nope/stream")),
        ("405", http.put("/healthz")),
        ("413", post_raw(http, "/v1/sessions", big)),
        ("415", post_raw(http, "/v1/sessions", b"{}", content_type="text/plain")),
    ]
    statuses = {response.status_code for _, response in answers}
    assert statuses >= {200, 201, 400, 404, 405, 409, 413, 415, 429}, statuses
    for what, response in answers:
        assert_json_body(response, what)
    admitted = submit(http, new_session(http), max_tokens=1)
    assert admitted.status_code in (202, 429)
    assert_json_body(admitted, "POST /v1/tasks")
    # The three exceptions: an empty 204, the event stream and the Prometheus text.
    deleted = http.delete(f"/v1/sessions/{session_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    with http.stream("GET", f"/v1/tasks/{done}/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
    assert http.get("/metrics").headers["content-type"].startswith("text/plain")


@pytest.mark.req("ORCH-0022")
def test_backoff_is_the_suggested_wait_plus_0_to_250_ms_of_jitter(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    """Both 503s of a warming pool suggest 1 s (readyz) or the warm-up left (admission)."""
    replica = {"replica_id": "r1", "warmup_ms": 600_000}
    http = connect(serve(make_config(pools=[pool("default", replicas=[replica])])))
    readyz = [http.get("/readyz") for _ in range(40)]
    backoffs = [int(r.headers["X-Backoff-Ms"]) for r in readyz]
    assert {r.status_code for r in readyz} == {503}
    assert all(1000 <= b <= 1000 + MAX_BACKOFF_JITTER_MS for b in backoffs), (
        f"ORCH-0022: X-Backoff-Ms must be the suggested 1000 ms plus 0..250 ms: {backoffs}"
    )
    assert len(set(backoffs)) > 1, f"ORCH-0022: X-Backoff-Ms carries no random jitter: {backoffs}"
    session_id = new_session(http)
    refused = [submit(http, session_id) for _ in range(40)]
    assert {r.status_code for r in refused} == {503}
    warmup = [int(r.headers["X-Backoff-Ms"]) for r in refused]
    # The suggestion is the warm-up still to go (just under 600 s), plus the jitter.
    assert all(590_000 <= b <= 600_000 + MAX_BACKOFF_JITTER_MS for b in warmup), warmup
    assert len(set(warmup)) > 1, f"ORCH-0022: no jitter on admission backoff: {warmup}"
