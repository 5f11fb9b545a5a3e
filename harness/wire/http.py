"""Raw HTTP access to a target and the assertions every wire check shares.

:class:`Wire` is a thin ``httpx.Client`` on the target's URL with its bearer
token, plus the few session-first steps the checks repeat (create a session,
admit a task, wait for a terminal state). :func:`expect_error` is the one way a
check asserts an error answer: the status and kind it expects under the ORCH ID
it certifies, and the generic envelope/backpressure rules of section 2 (reused
from :mod:`harness.fuzz.wire`) so any deviation names its own ID too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from harness.checks import RequirementFailure, expect, leading_ids
from harness.fuzz.wire import backpressure_problems, envelope_problems
from orchestrator.vocabulary import TERMINAL_STATES

READY_TIMEOUT_S = 15.0
"""How long a freshly started target may take to report every pool ready."""


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in response.headers.multi_items():
        out.setdefault(key, []).append(value)
    return out


def error_kind(response: httpx.Response) -> str | None:
    """The ``error.kind`` of an envelope, or None for any other body."""
    try:
        document = response.json()
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    kind = error.get("kind") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def error_problems(response: httpx.Response) -> list[str]:
    """Every section-2 rule the response breaks (envelope, kind table, backpressure headers)."""
    headers = _headers(response)
    return envelope_problems(response.status_code, headers, response.content) + (
        backpressure_problems(response.status_code, headers)
    )


def expect_error(
    response: httpx.Response, status: int, kind: str, req: str, what: str
) -> dict[str, Any]:
    """Assert ``response`` is error ``kind`` with ``status`` (requirement ``req``); return it."""
    body = response.text[:300]
    expect(
        response.status_code == status,
        f"{req}: {what} must answer {status} {kind}; got {response.status_code}: {body}",
    )
    try:
        document = response.json()
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    got = error.get("kind") if isinstance(error, dict) else None
    expect(got == kind, f"{req}: {what} must carry error kind {kind}; got {got!r}: {body}")
    problems = error_problems(response)
    # Each problem is a section-2 rule of its own (the envelope, the kind table, the
    # backpressure headers): blamed on its own ID, not on the requirement this call checks.
    named = [i for problem in problems for i in leading_ids(problem)]
    expect(not problems, f"{what}: " + "; ".join(problems), *(named or [req]))
    assert isinstance(error, dict)
    return error


def parse_rfc3339(value: Any, req: str, what: str) -> datetime:
    """An RFC 3339 UTC timestamp (``Z`` or ``+00:00``), or an assertion naming ``req``."""
    ok = isinstance(value, str) and (value.endswith("Z") or value.endswith("+00:00"))
    if ok:
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            ok = False
        else:
            ok = "T" in value and stamp.utcoffset() is not None and not stamp.utcoffset()
    expect(ok, f"{req}: {what} must be an RFC 3339 UTC timestamp; got {value!r}")
    return stamp.astimezone(UTC)


class Wire:
    """Raw HTTP on one target: ``Wire(url, auth_headers)``; close it or use ``with``."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = dict(headers or {})
        """The headers every request carries (the target's bearer token)."""
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)
        self.sessions: list[str] = []

    def __enter__(self) -> Wire:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the sessions made here (their unfinished tasks end) and close the client."""
        if self.http.is_closed:
            return
        for session_id in reversed(self.sessions):
            try:
                self.http.delete(f"/v1/sessions/{session_id}")
            except httpx.HTTPError:
                break
        self.http.close()

    def moved_to(self, url: str) -> Wire:
        """A wire on ``url`` (the same target, restarted) that takes over this one's sessions;
        this one's client closes without deleting them (the server it spoke to is gone)."""
        self.http.close()
        moved = Wire(url, self.headers)
        moved.sessions.extend(self.sessions)
        return moved

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``/readyz`` answers 200 (every pool has a ready replica), or fail."""
        deadline = time.monotonic() + timeout
        while (status := self.http.get("/readyz").status_code) != 200:
            if time.monotonic() > deadline:
                raise RequirementFailure(
                    f"ORCH-0130: /readyz still answers {status} {timeout:.0f} s after the start "
                    "although every replica can become ready",
                    ["ORCH-0130"],
                    default=True,
                )
            time.sleep(0.02)

    def post_json(
        self, path: str, body: Any, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST exactly these JSON bytes (no client-side validation, no re-encoding)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **dict(headers or {})}
        return self.http.post(path, content=content, headers=sent)

    def new_session(self, **body: Any) -> dict[str, Any]:
        response = self.post_json("/v1/sessions", body)
        expect(
            response.status_code == 201,
            f"ORCH-0026: POST /v1/sessions {body} must answer 201; got "
            f"{response.status_code}: {response.text[:300]}",
        )
        created: dict[str, Any] = response.json()
        self.sessions.append(str(created.get("session_id")))
        return created

    def admit(self, session_id: str | None = None, **body: Any) -> dict[str, Any]:
        """Admit a task (a new session unless given); ``prompt`` defaults to ``"hello"``."""
        if session_id is None:
            session_id = str(self.new_session()["session_id"])
        document = {"session_id": session_id, "prompt": "hello", **body}
        response = self.post_json("/v1/tasks", document)
        expect(
            response.status_code == 202,
            f"ORCH-0042: POST /v1/tasks must admit the task with 202; got "
            f"{response.status_code}: {response.text[:300]}",
        )
        admitted: dict[str, Any] = response.json()
        return admitted

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/tasks/{task_id}")
        expect(
            response.status_code == 200,
            f"ORCH-0051: GET /v1/tasks/{task_id} must answer 200; got "
            f"{response.status_code}: {response.text[:300]}",
        )
        task: dict[str, Any] = response.json()
        return task

    def pool(self, pool_id: str = "default") -> dict[str, Any]:
        response = self.http.get(f"/v1/pools/{pool_id}")
        expect(
            response.status_code == 200,
            f"ORCH-0119: GET /v1/pools/{pool_id} must answer 200; got {response.status_code}",
        )
        pool: dict[str, Any] = response.json()
        return pool

    def wait_task(
        self,
        task_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Poll the task until ``predicate`` holds; fail naming ``what`` (its IDs first).

        The timeout is blamed on the IDs ``what`` starts with, unless the wait happens
        inside ``orch_check(ID)``: then it is blamed on the requirement being checked.
        """
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(task_id)
            if predicate(task):
                return task
            if time.monotonic() > deadline:
                raise RequirementFailure(
                    f"{what}: not reached within {timeout:.0f} s; task {task_id} is "
                    f"{task.get('state')!r}: {json.dumps(task)[:400]}",
                    leading_ids(what),
                    default=True,
                )
            time.sleep(0.01)

    def wait_terminal(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_task(
            task_id,
            lambda t: t.get("state") in TERMINAL_STATES,
            "ORCH-0060: every admitted task reaches a terminal state",
            timeout,
        )

    def one_running(self, task_ids: list[str], timeout: float = 10.0) -> str:
        """The one task of ``task_ids`` that runs, once exactly one does (a slot was freed
        for tasks that hold it until cancelled)."""
        deadline = time.monotonic() + timeout
        while True:
            states = {task_id: self.task(task_id)["state"] for task_id in task_ids}
            running = [task_id for task_id, state in states.items() if state == "running"]
            if len(running) == 1:
                return running[0]
            if time.monotonic() > deadline:
                raise RequirementFailure(
                    f"ORCH-0093: a slot is free and tasks wait, so exactly one of them must run; "
                    f"after {timeout:.0f} s the states are {sorted(states.values())}",
                    ["ORCH-0093"],
                    default=True,
                )
            time.sleep(0.01)

    def wait_running(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_task(
            task_id,
            lambda t: t.get("state") == "running" and int(t.get("tokens_out") or 0) > 0,
            "ORCH-0093: a queued task is dispatched to a free slot of a ready replica",
            timeout,
        )
