"""The committed OpenAPI document: up to date, and declaring exactly what the server answers.

Spec: none. The document is a contract artefact; the behaviour it declares is
cited by the tests that exercise it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestrator.api.openapi import DEFAULT_PATH, openapi_document, render
from orchestrator.runtime import ManualClock
from orchestrator.server import ServerThread
from orchestrator.vocabulary import ERROR_KINDS, RESPONSE_ERROR_KINDS
from tests.orchestrator.wire import HOLD_TOKENS, slow_pool, wait_state
from tests.support import ConfigFactory, ServeFactory, config_with, pool

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / DEFAULT_PATH

# INTERNAL (500) is "a bug; never expected" (the spec): the tests provoke it on purpose,
# but it is no operation's contract, so no operation declares it.
NEVER_DECLARED = {500}

# What the tests of this directory observe, per operation (error statuses only).
EXPECTED_ERRORS: dict[str, set[int]] = {
    "createSession": {400, 401, 413, 415, 503},
    "getSession": {401, 404, 410, 503},
    "deleteSession": {401, 404, 503},
    "createTask": {400, 401, 404, 410, 413, 415, 429, 503},
    "getTask": {401, 404, 503},
    "cancelTask": {401, 404, 409, 503},
    "streamTask": {400, 401, 404, 503},
    "listPools": {401, 503},
    "getPool": {401, 404, 503},
    "getRouting": {401, 503},
    "setRouting": {400, 401, 413, 415, 503},
    "registerDefinition": {400, 401, 409, 413, 415, 503},
    "listDefinitions": {401, 503},
    "getDefinition": {401, 404, 503},
    "createRun": {400, 401, 404, 410, 413, 415, 503},
    "listRuns": {400, 401, 503},
    "getRun": {401, 404, 503},
    "abortRun": {400, 401, 404, 409, 503},
    "decideCheckpoint": {400, 401, 404, 409, 413, 415, 503},
    "listApprovals": {400, 401, 503},
    "getRunAudit": {401, 404, 503},
    "streamRun": {400, 401, 404, 503},
    "createWebhook": {400, 401, 413, 415, 503},
    "listWebhooks": {401, 503},
    "getWebhook": {401, 404, 503},
    "deleteWebhook": {401, 404, 409, 503},
    "listDeliveries": {400, 401, 404, 503},
    "healthz": set(),
    "readyz": {503},
    "metrics": set(),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_committed_document_is_up_to_date(document: dict[str, Any]) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(document), (
        "contracts/openapi/orchqueue.yaml is stale: run `orchq openapi regen`"
    )
    assert yaml.safe_load(COMMITTED.read_text(encoding="utf-8")) == document


def test_served_document_equals_the_committed_one(
    http: httpx.Client, document: dict[str, Any]
) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == document


def test_every_operation_declares_exactly_the_expected_errors(document: dict[str, Any]) -> None:
    declared = {
        op["operationId"]: {int(s) for s in op["responses"] if int(s) >= 400}
        for _, _, op in operations(document)
    }
    assert declared == EXPECTED_ERRORS


def test_error_responses_use_the_envelope_and_backpressure_headers(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            where = f"{method} {path} {status}"
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
            headers = set(response.get("headers", {}))
            if int(status) in (429, 503):
                assert headers >= {"Retry-After", "X-Backoff-Ms"}, where
            kinds = [k for k in RESPONSE_ERROR_KINDS if ERROR_KINDS[k].status == int(status)]
            assert any(kind in response["description"] for kind in kinds), where
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) >= {"kind", "message", "retriable"}
    assert "request_id" in error_body["properties"]


def test_no_framework_422_is_declared(document: dict[str, Any]) -> None:
    """Validation errors are 400 INVALID_PARAMS; the server never answers FastAPI's 422."""
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], f"{method} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]


# ---------------------------------------------------------------- observed on the wire


class Recorder:
    """Maps every response seen by an httpx client to its OpenAPI operation."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.routes = [
            (method, re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), op["operationId"])
            for method, path, op in operations(document)
        ]
        self.seen: dict[str, set[int]] = {}

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        for method, pattern, operation_id in self.routes:
            if method == request.method and pattern.match(request.url.path):
                self.seen.setdefault(operation_id, set()).add(response.status_code)
                return

    def client(self, server: ServerThread, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=server.url,
            headers=headers,
            timeout=15.0,
            event_hooks={"response": [self]},
        )


def test_every_declared_error_status_is_observed_and_nothing_else(
    serve: ServeFactory, make_config: ConfigFactory, document: dict[str, Any], tmp_path: Path
) -> None:
    recorder = Recorder(document)
    clock = ManualClock()
    token = "tour-token"
    configured = {"url": "http://127.0.0.1:9/hooks", "events": ["*"], "secret": "s" * 16}
    main = serve(
        make_config(auth_token=token, pools=[slow_pool(queue_capacity=1)], webhooks=[configured]),
        clock=clock,
    )
    down = [{"replica_id": "r1", "faults": {"unavailable": True}}]
    broken = serve(config_with(str(tmp_path / "broken.db"), pools=[pool("default", replicas=down)]))
    full = serve(config_with(str(tmp_path / "full.db"), max_connections=1, pools=[slow_pool()]))
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    json_type = {"Content-Type": "application/json"}
    text_type = {"Content-Type": "text/plain"}

    with (
        recorder.client(main) as anonymous,
        recorder.client(main, token) as http,
        recorder.client(broken) as other,
    ):
        # 401 on every /v1 operation.
        for method, path, _ in operations(document):
            if path.startswith("/v1/"):
                anonymous.request(method, path.replace("{", "x").replace("}", "x"))
        # Sessions.
        session = http.post("/v1/sessions", json={"ttl_seconds": 60}).json()["session_id"]
        short = http.post("/v1/sessions", json={"ttl_seconds": 1}).json()["session_id"]
        http.post("/v1/sessions", json={"ttl_seconds": 0})
        http.post("/v1/sessions", content=big, headers=json_type)
        http.post("/v1/sessions", content=b"{}", headers=text_type)
        http.get(f"/v1/sessions/{session}")
        http.get("/v1/sessions/nope")
        http.delete("/v1/sessions/nope")
        # Run definitions and runs.
        steps = [{"id": "hold", "prompt": "p", "max_tokens": HOLD_TOKENS}]
        definition = {"name": "tour", "version": "1", "steps": steps}
        http.post("/v1/definitions", json=definition)  # 201
        http.post("/v1/definitions", json=definition)  # 200
        http.post("/v1/definitions", json={**definition, "steps": [{"id": "x", "prompt": "q"}]})
        http.post("/v1/definitions", json={**definition, "steps": []})  # 400
        http.post("/v1/definitions", content=big, headers=json_type)
        http.post("/v1/definitions", content=b"{}", headers=text_type)
        http.get("/v1/definitions")
        http.get("/v1/definitions/tour/versions/1")
        http.get("/v1/definitions/tour/versions/2")
        run_body = {"session_id": session, "definition": "tour", "version": "1"}
        run = http.post("/v1/runs", json=run_body).json()["run_id"]
        http.post("/v1/runs", json={**run_body, "max_parallel": 0})
        http.post("/v1/runs", json={**run_body, "version": "2"})
        http.post("/v1/runs", content=big, headers=json_type)
        http.post("/v1/runs", content=b"{}", headers=text_type)
        http.get("/v1/runs")
        http.get("/v1/runs", params={"limit": 0})
        http.get(f"/v1/runs/{run}")
        http.get("/v1/runs/nope")
        http.delete(f"/v1/runs/{run}")
        http.delete(f"/v1/runs/{run}")
        http.delete("/v1/runs/nope")
        with http.stream("GET", f"/v1/runs/{run}/events") as stream:
            stream.read()
        http.get(f"/v1/runs/{run}/events", headers={"Last-Event-ID": "x"})
        http.get("/v1/runs/nope/events")
        # Webhooks.
        hook = {"url": "http://127.0.0.1:9/hooks", "events": ["run.failed"], "secret": "s" * 16}
        made = http.post("/v1/webhooks", json=hook).json()["webhook_id"]
        http.post("/v1/webhooks", json={**hook, "url": "ftp://h"})
        http.post("/v1/webhooks", content=big, headers=json_type)
        http.post("/v1/webhooks", content=b"{}", headers=text_type)
        listed = http.get("/v1/webhooks").json()["webhooks"]
        from_config = next(w["webhook_id"] for w in listed if w["source"] == "config")
        http.get(f"/v1/webhooks/{made}")
        http.get("/v1/webhooks/nope")
        http.get(f"/v1/webhooks/{made}/deliveries")
        http.get(f"/v1/webhooks/{made}/deliveries", params={"limit": 0})
        http.get("/v1/webhooks/nope/deliveries")
        http.delete(f"/v1/webhooks/{from_config}")
        http.delete(f"/v1/webhooks/{made}")
        http.delete("/v1/webhooks/nope")
        http.delete("/v1/runs/nope", headers={"X-Orch-Actor": ""})  # 400
        # Checkpoints and the audit log.
        gated = [{"id": "gate", "prompt": "p", "checkpoint": {"when": "before"}}]
        http.post("/v1/definitions", json={"name": "gated", "version": "1", "steps": gated})
        # Its checkpoint is requested as the run is created: it is pending at once.
        paused = http.post("/v1/runs", json={**run_body, "definition": "gated"}).json()["run_id"]
        decision = f"/v1/runs/{paused}/checkpoints/gate.before.1"
        http.post(decision, json={"decision": "retry", "decided_by": "me"})  # 400
        http.post(decision, content=big, headers=json_type)
        http.post(decision, content=b"{}", headers=text_type)
        http.post(
            f"/v1/runs/{paused}/checkpoints/x", json={"decision": "abort", "decided_by": "me"}
        )
        http.post(decision, json={"decision": "abort", "decided_by": "me"})  # 200
        http.post(decision, json={"decision": "abort", "decided_by": "me"})  # 409
        http.get("/v1/approvals")
        http.get("/v1/approvals", params={"state": "maybe"})
        http.get(f"/v1/runs/{paused}/audit")
        http.get("/v1/runs/nope/audit")
        # Tasks.
        body = {"session_id": session, "prompt": "p", "max_tokens": HOLD_TOKENS}
        running = http.post("/v1/tasks", json=body).json()["task_id"]
        wait_state(http, running, {"running"})
        http.post("/v1/tasks", json=body)  # fills the queue (capacity 1)
        http.post("/v1/tasks", json=body)  # 429
        http.post("/v1/tasks", json={**body, "max_tokens": 0})
        http.post("/v1/tasks", json={**body, "session_id": "nope"})
        http.post("/v1/tasks", content=big, headers=json_type)
        http.post("/v1/tasks", content=b"{}", headers=text_type)
        http.get(f"/v1/tasks/{running}")
        http.get("/v1/tasks/nope")
        http.delete(f"/v1/tasks/{running}")
        http.delete(f"/v1/tasks/{running}")
        http.delete("/v1/tasks/nope")
        with http.stream("GET", f"/v1/tasks/{running}/stream") as stream:
            stream.read()
        http.get(f"/v1/tasks/{running}/stream", headers={"Last-Event-ID": "x"})
        http.get("/v1/tasks/nope/stream")
        # Expiry.
        clock.advance(1_000)
        http.get(f"/v1/sessions/{short}")
        http.post("/v1/tasks", json={**body, "session_id": short})
        http.post("/v1/runs", json={**run_body, "session_id": short})
        http.delete(f"/v1/sessions/{session}")
        # Pools, routing, health.
        http.get("/v1/pools")
        http.get("/v1/pools/default")
        http.get("/v1/pools/nope")
        http.get("/v1/admin/routing")
        http.put("/v1/admin/routing", json={"fallback_mode": "intelligent_pacing"})
        http.put("/v1/admin/routing", json={"fallback_mode": "nope"})
        http.put("/v1/admin/routing", content=big, headers=json_type)
        http.put("/v1/admin/routing", content=b"{}", headers=text_type)
        for path in ("/healthz", "/readyz", "/metrics"):
            http.get(path)
        # A pool that cannot serve.
        other_session = other.post("/v1/sessions", json={}).json()["session_id"]
        other.post("/v1/tasks", json={"session_id": other_session, "prompt": "p"})
        other.get("/readyz")
    # A server at its connection limit: one connection holds a stream, every other gets 503.
    with httpx.Client(base_url=full.url, timeout=15.0) as setup:
        full_session = setup.post("/v1/sessions", json={}).json()["session_id"]
        body = {"session_id": full_session, "prompt": "p", "max_tokens": HOLD_TOKENS}
        held = setup.post("/v1/tasks", json=body).json()["task_id"]
    with (
        httpx.Client(base_url=full.url, timeout=15.0) as holder,
        holder.stream("GET", f"/v1/tasks/{held}/stream"),
        recorder.client(full) as busy,
    ):
        for method, path, _ in operations(document):
            if path.startswith("/v1/"):
                busy.request(method, path.replace("{", "x").replace("}", "x"))

    for method, path, operation in operations(document):
        operation_id = operation["operationId"]
        declared = {int(s) for s in operation["responses"]}
        seen = recorder.seen.get(operation_id, set()) - NEVER_DECLARED
        assert seen == declared, (
            f"{method} {path}: observed {sorted(seen)}, declared {sorted(declared)}"
        )
