"""Sessions: create, read (TTL and task counts), delete (cancels its live tasks).

Beyond the conformance suite's session checks (fields, TTL arithmetic on the wall
clock, 404/410, delete cancelling live tasks): the defaults of a body-less create,
unique ids, metadata round-tripped exactly, the TTL counted down on the manual clock,
the streams of a deleted session's tasks closed, and deleting an expired session.

Spec: ORCH-0005, ORCH-0006, ORCH-0025, ORCH-0026, ORCH-0027, ORCH-0028, ORCH-0029,
ORCH-0031, ORCH-0032, ORCH-0033, ORCH-0034, ORCH-0035, ORCH-0046, ORCH-0063, ORCH-0082.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from orchestrator.runtime import ManualClock
from tests.orchestrator.api.envelope import (
    assert_error,
    assert_task_error,
    iter_events,
    read_stream,
)
from tests.orchestrator.wire import (
    HOLD_TOKENS,
    HttpFactory,
    admit,
    get_task,
    new_session,
    slow_pool,
    wait_state,
    wait_terminal,
)
from tests.support import ConfigFactory, ServeFactory

SESSION_FIELDS = {"session_id", "ttl_seconds", "created_at", "expires_at", "metadata"}


def rfc3339(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


# ---------------------------------------------------------------- POST


@pytest.mark.req("ORCH-0005", "ORCH-0025", "ORCH-0026")
def test_create_returns_201_with_location_and_defaults(http: httpx.Client) -> None:
    response = http.post("/v1/sessions", json={})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == SESSION_FIELDS
    assert response.headers["Location"] == f"/v1/sessions/{body['session_id']}"
    assert isinstance(body["session_id"], str)
    assert body["session_id"]
    assert body["ttl_seconds"] == 600
    assert body["metadata"] == {}
    created, expires = rfc3339(body["created_at"]), rfc3339(body["expires_at"])
    assert expires - created == timedelta(seconds=600)
    assert abs(created - datetime.now(created.tzinfo)) < timedelta(minutes=5)


@pytest.mark.parametrize("content", [None, b"null"], ids=["no body", "null"])
@pytest.mark.req("ORCH-0025")
def test_create_without_a_body_uses_the_defaults(http: httpx.Client, content: bytes | None) -> None:
    headers = {"Content-Type": "application/json"} if content else {}
    response = http.post("/v1/sessions", content=content, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["ttl_seconds"] == 600


@pytest.mark.req("ORCH-0006")
def test_session_ids_are_unique(http: httpx.Client) -> None:
    ids = {new_session(http) for _ in range(20)}
    assert len(ids) == 20


METADATA_SAMPLES: list[Any] = [
    {"user": "alice", "n": 3, "ratio": 0.5, "flag": True, "none": None, "list": [1, "two", {}]},
    {"nested": {"deeper": {"deepest": ["x", {"y": [None]}]}}},
    {"unicode": "héllo wörld — 日本語 — 😀🚀", "emoji 🔑": "值"},
    {"rtl": "\u202eevil.exe\u202c", "arabic": "مرحبا بالعالم", "hebrew": "שלום"},
    {"nul": "a\u0000b", "controls": "\t\n\r\u0001\u001f\u007f", "\u0000key": "v"},
    {"zero width": "a\u200bb\ufeff", "combining": "e\u0301", "astral": "\U0010fffd"},
    {"quotes": "'; DROP TABLE sessions; --", "json": '{"a": 1}', "backslash": "\\\\"},
    {"big": 2**62, "negative": -(2**62), "float": 1.5e300},
]


@pytest.mark.parametrize("metadata", METADATA_SAMPLES)
@pytest.mark.req("ORCH-0025", "ORCH-0027")
def test_metadata_round_trips_exactly(http: httpx.Client, metadata: dict[str, Any]) -> None:
    created = http.post("/v1/sessions", json={"ttl_seconds": 30, "metadata": metadata})
    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == metadata
    session_id = created.json()["session_id"]
    fetched = http.get(f"/v1/sessions/{session_id}")
    assert fetched.status_code == 200
    assert fetched.json()["metadata"] == metadata


# ---------------------------------------------------------------- GET


@pytest.mark.req("ORCH-0027", "ORCH-0028", "ORCH-0032")
def test_get_reports_the_ttl_counting_down(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    clock = ManualClock()
    http = connect(serve(make_config(), clock=clock))
    created = http.post("/v1/sessions", json={"ttl_seconds": 120}).json()
    remaining = []
    for step in (0, 1, 999, 59_000, 60_000 - 1):
        clock.advance(step)
        # Neither reading the session nor admitting tasks extends it (ORCH-0032).
        admit(http, created["session_id"], max_tokens=1)
        response = http.get(f"/v1/sessions/{created['session_id']}")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == SESSION_FIELDS | {"ttl_remaining_ms", "tasks"}
        for key in SESSION_FIELDS:
            assert body[key] == created[key], key
        assert rfc3339(body["expires_at"]) - rfc3339(body["created_at"]) == timedelta(seconds=120)
        remaining.append(body["ttl_remaining_ms"])
    assert remaining == [120_000, 119_999, 119_000, 60_000, 1]


@pytest.mark.req("ORCH-0028")
def test_get_ttl_remaining_on_the_wall_clock(http: httpx.Client) -> None:
    session_id = new_session(http, ttl_seconds=30)
    readings = [http.get(f"/v1/sessions/{session_id}").json()["ttl_remaining_ms"] for _ in range(5)]
    assert all(0 < r <= 30_000 for r in readings), readings
    assert readings == sorted(readings, reverse=True)


@pytest.mark.req("ORCH-0029")
def test_get_counts_queued_running_and_terminal_tasks(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool()])))
    session_id = new_session(http)
    other = new_session(http)

    def counts(sid: str = session_id) -> dict[str, int]:
        response = http.get(f"/v1/sessions/{sid}")
        assert response.status_code == 200
        tasks: dict[str, int] = response.json()["tasks"]
        return tasks

    assert counts() == {"queued": 0, "running": 0, "terminal": 0}
    done = admit(http, session_id, max_tokens=1)["task_id"]
    assert wait_terminal(http, done)["state"] == "completed"
    running = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    wait_state(http, running, {"running"})
    queued = [admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"] for _ in range(2)]
    admit(http, other, max_tokens=HOLD_TOKENS)  # another session's task is not counted
    assert counts() == {"queued": 2, "running": 1, "terminal": 1}
    assert http.delete(f"/v1/tasks/{queued[0]}").status_code == 200
    assert counts() == {"queued": 1, "running": 1, "terminal": 2}
    assert http.delete(f"/v1/tasks/{running}").status_code == 200
    wait_state(http, queued[1], {"running"})
    assert counts() == {"queued": 0, "running": 1, "terminal": 3}
    assert counts(other) == {"queued": 1, "running": 0, "terminal": 0}
    http.delete(f"/v1/sessions/{session_id}")
    http.delete(f"/v1/sessions/{other}")


# ---------------------------------------------------------------- DELETE


@pytest.mark.req("ORCH-0033", "ORCH-0034", "ORCH-0035", "ORCH-0046", "ORCH-0063", "ORCH-0082")
def test_delete_cancels_live_tasks_and_closes_their_streams(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool()])))
    doomed, survivor = new_session(http), new_session(http)
    finished = admit(http, doomed, max_tokens=1)["task_id"]
    wait_terminal(http, finished)
    running = admit(http, doomed, max_tokens=HOLD_TOKENS)["task_id"]
    wait_state(http, running, {"running"})
    queued = admit(http, doomed, max_tokens=HOLD_TOKENS)["task_id"]
    other = admit(http, survivor, max_tokens=3)["task_id"]

    with (
        http.stream("GET", f"/v1/tasks/{running}/stream") as running_stream,
        http.stream("GET", f"/v1/tasks/{queued}/stream") as queued_stream,
    ):
        running_events = iter_events(running_stream)
        first = [next(running_events), next(running_events)]
        assert [event for _, event, _ in first] == ["started", "token"]

        response = http.delete(f"/v1/sessions/{doomed}")
        assert response.status_code == 204
        assert response.content == b""

        rest = list(running_events)
        assert rest[-1][1] == "error"
        assert_task_error(rest[-1][2], "CANCELLED")
        assert {event for _, event, _ in rest[:-1]} <= {"token"}
        queued_events = list(iter_events(queued_stream))
        assert [event for _, event, _ in queued_events] == ["error"]
        assert_task_error(queued_events[0][2], "CANCELLED")

    for task_id in (running, queued):
        task = get_task(http, task_id)
        assert task["state"] == "cancelled"
        assert_task_error(task["error"], "CANCELLED")
        assert task["finished_at"] is not None
    assert get_task(http, finished)["state"] == "completed"
    assert [a["state"] for a in get_task(http, running)["attempts"]] == ["cancelled"]
    assert get_task(http, queued)["attempts"] == []
    # A finished stream replays the same closing event.
    assert read_stream(http, queued)[-1][2]["kind"] == "CANCELLED"

    # The other session's task is untouched and runs to completion on the freed slot.
    assert wait_terminal(http, other)["state"] == "completed"
    assert read_stream(http, other)[-1][1] == "end"
    assert http.get(f"/v1/sessions/{survivor}").json()["tasks"]["terminal"] == 1

    assert_error(http.get(f"/v1/sessions/{doomed}"), 404, "NOT_FOUND")
    assert_error(http.delete(f"/v1/sessions/{doomed}"), 404, "NOT_FOUND")
    response = http.post("/v1/tasks", json={"session_id": doomed, "prompt": "late"})
    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.req("ORCH-0031", "ORCH-0033")
def test_delete_of_an_expired_session_is_allowed(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    clock = ManualClock()
    http = connect(serve(make_config(), clock=clock))
    session_id = new_session(http, ttl_seconds=1)
    clock.advance(5_000)
    assert_error(http.get(f"/v1/sessions/{session_id}"), 410, "SESSION_EXPIRED")
    assert http.delete(f"/v1/sessions/{session_id}").status_code == 204
    assert_error(http.get(f"/v1/sessions/{session_id}"), 404, "NOT_FOUND")
