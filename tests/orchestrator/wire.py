"""The wire-testing toolkit of orchestratord's tests: raw HTTP requests, waits, small pools.

Tests that speak HTTP to a server build on these (with the ``serve`` and
``connect`` fixtures); states and error kinds come from ``orchestrator.vocabulary``.
``wait_terminal`` is the one wait for a task's end in these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from orchestrator.vocabulary import TERMINAL_STATES
from tests.support import pool, wait_until

HttpFactory = Callable[..., httpx.Client]
"""The ``connect`` fixture: ``connect(server, token=None)`` -> a client on that server."""

FAST_POOL = pool("default", replicas=[{"replica_id": "r1"}, {"replica_id": "r2"}])
"""Two zero-delay mock replicas."""

# One replica, one slot, 50 ms per token: a task with many tokens holds the
# only slot for seconds, so the following ones stay queued until cancelled.
SLOW_REPLICA = {"replica_id": "r1", "slots": 1, "token_delay_ms": 50}
HOLD_TOKENS = 400
"""max_tokens of a task meant to occupy a slot for the length of a test (20 s)."""


def slow_pool(pool_id: str = "default", **keys: Any) -> dict[str, Any]:
    return pool(pool_id, replicas=[dict(SLOW_REPLICA)], **keys)


def post_json(
    http: httpx.Client, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST exactly this JSON (``allow_nan`` so NaN/Infinity literals can be sent)."""
    content = json.dumps(body, allow_nan=True)
    return post_raw(http, path, content.encode(), headers=headers)


def post_raw(
    http: httpx.Client,
    path: str,
    content: bytes | str,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> httpx.Response:
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    data = content.encode() if isinstance(content, str) else content
    return http.request(method, path, content=data, headers=sent)


def new_session(http: httpx.Client, **body: Any) -> str:
    response = http.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def task_body(session_id: str, prompt: str = "hello", **fields: Any) -> dict[str, Any]:
    return {"session_id": session_id, "prompt": prompt, "max_tokens": 4, **fields}


def submit(
    http: httpx.Client, session_id: str, prompt: str = "hello", **fields: Any
) -> httpx.Response:
    return http.post("/v1/tasks", json=task_body(session_id, prompt, **fields))


def admit(
    http: httpx.Client, session_id: str, prompt: str = "hello", **fields: Any
) -> dict[str, Any]:
    """Submit a task and insist it is admitted (202)."""
    response = submit(http, session_id, prompt, **fields)
    assert response.status_code == 202, response.text
    admitted: dict[str, Any] = response.json()
    return admitted


def get_task(http: httpx.Client, task_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


def wait_state(
    http: httpx.Client, task_id: str, states: frozenset[str] | set[str], timeout: float = 10.0
) -> dict[str, Any]:
    """Poll a task until its state is one of ``states``; return the task."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(get_task(http, task_id))
        return seen["state"] in states

    wait_until(reached, timeout=timeout)
    return seen


def wait_terminal(http: httpx.Client, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    return wait_state(http, task_id, TERMINAL_STATES, timeout)
