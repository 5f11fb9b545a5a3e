"""Hostile input: every malformed request is a 4xx in the envelope, never a 5xx, and loses nothing.

The cases are data (``hostile_cases``), checked one by one by the parametrized
test, and all together by the barrage test on a fresh server, which then proves
the tasks admitted before the barrage still reach a terminal state.

The conformance fuzz suite generates input from the OpenAPI document; these cases
are the ones a generator does not reach (NaN, infinities and huge numbers, lone
surrogates, bodies nested 10,000 deep, operator-injection shapes, a barrage on one
server).

Spec: ORCH-0002, ORCH-0014, ORCH-0015, ORCH-0017, ORCH-0019, ORCH-0024, ORCH-0038,
ORCH-0050, ORCH-0060.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from orchestrator.server import ServerThread
from orchestrator.vocabulary import TERMINAL_STATES
from tests.orchestrator.api.envelope import assert_4xx_envelope, read_stream
from tests.orchestrator.wire import (
    admit,
    get_task,
    new_session,
    wait_terminal,
)
from tests.support import config_with

TWO_MIB = 2 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One hostile request; ``{session}`` in its body stands for a real session id."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 400
    content_type: str | None = "application/json"

    def send(self, http: httpx.Client, session_id: str) -> httpx.Response:
        body = self.body
        if body is not None:
            body = body.replace(b"{session}", session_id.encode())
        headers = {"Content-Type": self.content_type} if self.content_type else {}
        return http.request(self.method, self.path, content=body, headers=headers)


def _task(**fields: Any) -> dict[str, Any]:
    return {"session_id": "{session}", "prompt": "hello", "max_tokens": 2, **fields}


def _encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def _with_raw_value(body: dict[str, Any], dotted: str, raw: str) -> bytes:
    """``body`` as JSON with the field at ``dotted`` replaced by a raw JSON token."""
    marker = "__RAW_VALUE__"
    target = body = json.loads(json.dumps(body))
    *parents, leaf = dotted.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = marker
    return json.dumps(body).replace(f'"{marker}"', raw).encode()


WRONG_VALUES: dict[str, Any] = {
    "null": None,
    "bool": True,
    "int": 7,
    "float": 1.5,
    "string": "x",
    "list": [1],
    "object": {"a": 1},
}
# Field -> the kinds of WRONG_VALUES that are in fact valid there (skipped).
TASK_FIELD_TYPES: dict[str, set[str]] = {
    "session_id": {"string"},  # valid type; an unknown id is a 404, tested elsewhere
    "prompt": {"string"},
    "priority": set(),
    "pool": {"string"},
    "max_tokens": {"int"},
    "params": set(),
    "params.seed": {"int", "null"},
    "params.sampler_profile_version": {"string"},
    "params.determinism": set(),
    "params.temperature": {"float"},
    "params.top_p": set(),
}
SESSION_FIELD_TYPES: dict[str, set[str]] = {"ttl_seconds": {"int"}, "metadata": {"object"}}
NUMERIC_TASK_FIELDS = ["max_tokens", "params.seed", "params.temperature", "params.top_p"]
HUGE_NUMBERS = {
    "1e400": "1e400",
    "-1e400": "-1e400",
    "2**70": str(2**70),
    "-1": "-1",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "10**5000": "9" * 5000,
}
SURROGATE = '"\\ud800"'
ODD_IDS = {
    "sql-quote": "' OR '1'='1",
    "sql-drop": "x'; DROP TABLE tasks; --",
    "sql-union": "1 UNION SELECT * FROM sessions",
    "10kB": "a" * 10_000,
    "unicode": "задача-日本語-😀",
    "rtl": "\u202etxt.exe",
    "nul": "%00",
    "pct-surrogate": "%ED%A0%80",
    "pct-invalid-utf8": "%FF%FE",
    "pct-pct": "%25",
    "pct-slash": "a%2Fb",
    "pct-space": "a%20b",
    "dotdot-encoded": "%2E%2E",
}


ID_ROUTES = [
    ("GET", "/v1/sessions/{id}"),
    ("DELETE", "/v1/sessions/{id}"),
    ("GET", "/v1/tasks/{id}"),
    ("DELETE", "/v1/tasks/{id}"),
    ("GET", "/v1/tasks/{id}/stream"),
    ("GET", "/v1/pools/{id}"),
]


def hostile_cases() -> list[Case]:
    cases: list[Case] = []
    # Wrong JSON types at every field.
    for field, valid in TASK_FIELD_TYPES.items():
        for kind, value in WRONG_VALUES.items():
            if kind not in valid:
                body = _with_raw_value(_task(), field, json.dumps(value))
                cases.append(Case(f"task {field}={kind}", "POST", "/v1/tasks", body))
    for field, valid in SESSION_FIELD_TYPES.items():
        for kind, value in WRONG_VALUES.items():
            if kind not in valid:
                body = _encode({field: value})
                cases.append(Case(f"session {field}={kind}", "POST", "/v1/sessions", body))
    for kind, value in WRONG_VALUES.items():
        body = _encode({"fallback_mode": value})
        cases.append(Case(f"routing fallback_mode={kind}", "PUT", "/v1/admin/routing", body))
    # Whole bodies of the wrong type, nested garbage.
    for kind, value in WRONG_VALUES.items():
        for path in ("/v1/tasks", "/v1/sessions"):
            # A session's body is optional: OpenAPI declares it `SessionCreate | null`.
            if kind != "object" and (path, kind) != ("/v1/sessions", "null"):
                cases.append(Case(f"{path} body={kind}", "POST", path, _encode(value)))
    garbage: dict[str, Any] = {
        "operator injection": _task(prompt={"$gt": ""}),
        "session_id object": _task(session_id={"$ne": None}),
        "params nested params": _task(params={"params": {"params": {}}}),
        "list of bodies": [_task(), _task()],
        "params list": _task(params=[{"seed": 1}]),
        "prompt list of strings": _task(prompt=["a", "b"]),
        "__proto__": _task(__proto__={"admin": True}),
    }
    for name, value in garbage.items():
        cases.append(Case(f"garbage: {name}", "POST", "/v1/tasks", _encode(value)))
    # Huge numbers, NaN and infinities (JSON has no such literals).
    for field in NUMERIC_TASK_FIELDS:
        for name, raw in HUGE_NUMBERS.items():
            body = _with_raw_value(_task(), field, raw)
            cases.append(Case(f"task {field}={name}", "POST", "/v1/tasks", body))
    for name, raw in HUGE_NUMBERS.items():
        body = _with_raw_value({}, "ttl_seconds", raw)
        cases.append(Case(f"session ttl_seconds={name}", "POST", "/v1/sessions", body))
        if name in ("NaN", "Infinity", "-Infinity", "1e400", "-1e400"):
            body = _with_raw_value({"metadata": {}}, "metadata.n", raw)
            cases.append(Case(f"session metadata={name}", "POST", "/v1/sessions", body))
    # Lone surrogates.
    for field in ("prompt", "session_id", "pool", "params.sampler_profile_version"):
        body = _with_raw_value(_task(), field, SURROGATE)
        cases.append(Case(f"task {field}=lone surrogate", "POST", "/v1/tasks", body))
    for name, raw_body in {
        "metadata value": b'{"metadata": {"k": "\\ud800"}}',
        "metadata key": b'{"metadata": {"\\udfff": 1}}',
        "metadata nested": b'{"metadata": {"k": [{"j": "a\\udc00b"}]}}',
    }.items():
        cases.append(Case(f"session {name}=lone surrogate", "POST", "/v1/sessions", raw_body))
    # Odd ids in every path: never found, never an error of the server.
    for id_name, raw_id in ODD_IDS.items():
        segment = raw_id if "%" in raw_id else quote(raw_id, safe="")
        for method, route in ID_ROUTES:
            path = route.replace("{id}", segment)
            cases.append(Case(f"{method} {route} id={id_name}", method, path, status=404))
    for id_name, raw_id in ODD_IDS.items():
        if "%" not in raw_id:  # in a body, ids over the length limit are invalid, not unknown
            for field, limit in (("pool", 64), ("session_id", 128)):
                status = 404 if len(raw_id) <= limit else 400
                body = _encode(_task(**{field: raw_id}))
                cases.append(Case(f"task {field}={id_name}", "POST", "/v1/tasks", body, status))
    # Oversized and deeply nested bodies, empty bodies.
    big = b'{"prompt": "' + b"x" * TWO_MIB + b'"}'
    for method, path in (
        ("POST", "/v1/tasks"),
        ("POST", "/v1/sessions"),
        ("PUT", "/v1/admin/routing"),
    ):
        cases.append(Case(f"2 MiB {method} {path}", method, path, big, status=413))
    deep = 10_000
    for name, body in {
        "arrays": b"[" * deep + b"]" * deep,
        "objects": b'{"a":' * deep + b"1" + b"}" * deep,
        "in params": b'{"session_id": "{session}", "prompt": "p", "params": '
        + b'{"a":' * deep
        + b"1"
        + b"}" * deep
        + b"}",
        "in metadata": b'{"metadata": {"m": ' + b"[" * deep + b"]" * deep + b"}}",
        "metadata depth 960": b'{"metadata": {"m": ' + b"[" * 960 + b"]" * 960 + b"}}",
        "metadata depth 100": b'{"metadata": {"m": ' + b"[" * 100 + b"]" * 100 + b"}}",
    }.items():
        path = "/v1/tasks" if name in ("arrays", "objects", "in params") else "/v1/sessions"
        cases.append(Case(f"nested {name}", "POST", path, body))
    cases.append(Case("tasks empty body", "POST", "/v1/tasks", b""))
    cases.append(Case("tasks no body at all", "POST", "/v1/tasks", None, content_type=None))
    cases.append(Case("routing empty body", "PUT", "/v1/admin/routing", b""))
    cases.append(Case("tasks whitespace body", "POST", "/v1/tasks", b"  \n "))
    cases.append(Case("tasks NUL bytes", "POST", "/v1/tasks", b"\x00" * 64))
    cases.append(Case("tasks invalid UTF-8", "POST", "/v1/tasks", b'{"prompt": "\xff\xfe"}'))
    cases.append(Case("tasks trailing data", "POST", "/v1/tasks", _encode(_task()) + b" {}"))
    return cases


CASES = hostile_cases()


@pytest.fixture(scope="module")
def shared_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the ~270 single-request cases below (each uses its own session).

    A refused request must change nothing, which each case checks; the barrage test
    runs them all again on a fresh server with tasks in flight.
    """
    database = tmp_path_factory.mktemp("hostile") / "orchq.db"
    with (
        ServerThread(config_with(str(database))) as server,
        httpx.Client(base_url=server.url, timeout=15.0) as http,
    ):
        yield http


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.req(
    "ORCH-0002", "ORCH-0014", "ORCH-0015", "ORCH-0017", "ORCH-0019", "ORCH-0024", "ORCH-0050"
)
def test_hostile_request_is_a_4xx_envelope(shared_http: httpx.Client, case: Case) -> None:
    http = shared_http
    session_id = new_session(http)
    response = case.send(http, session_id)
    error = assert_4xx_envelope(response)
    assert response.status_code == case.status, (case.name, response.status_code, error)
    # Nothing was admitted by a refused request.
    assert http.get(f"/v1/sessions/{session_id}").json()["tasks"] == {
        "queued": 0,
        "running": 0,
        "terminal": 0,
    }


@pytest.mark.parametrize(
    "prompt",
    [
        "nul \u0000 in the middle",
        "\u0000",
        "rtl \u202e override \u202c and \u200f marks",
        "مرحبا بالعالم",
        "mixed 日本語 😀 \U0010fffd e\u0301",
        "'; DROP TABLE tasks; --",
        "\\ud800 (escaped text, not a surrogate)",
        "x" * 32_768,
    ],
)
@pytest.mark.req("ORCH-0038")
def test_odd_but_valid_prompts_are_accepted_and_complete(http: httpx.Client, prompt: str) -> None:
    session_id = new_session(http, metadata={"prompt": prompt})
    admitted = admit(http, session_id, prompt, max_tokens=3)
    task = wait_terminal(http, admitted["task_id"])
    assert (task["state"], task["tokens_out"]) == ("completed", 3)
    assert read_stream(http, admitted["task_id"])[-1][1] == "end"
    assert http.get(f"/v1/sessions/{session_id}").json()["metadata"] == {"prompt": prompt}


@pytest.mark.req("ORCH-0017", "ORCH-0060")
def test_barrage_loses_nothing(http: httpx.Client) -> None:
    session_id = new_session(http)
    admitted = [admit(http, session_id, f"before {i}", max_tokens=8)["task_id"] for i in range(8)]
    statuses: dict[int, int] = {}
    for case in CASES:
        response = case.send(http, session_id)
        assert_4xx_envelope(response)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert set(statuses) <= {400, 404, 413}, statuses
    for task_id in admitted:
        task = wait_terminal(http, task_id)
        assert task["state"] in TERMINAL_STATES
        assert task["state"] == "completed", task
        assert read_stream(http, task_id)[-1][1] == "end"
    counts = http.get(f"/v1/sessions/{session_id}").json()["tasks"]
    assert counts == {"queued": 0, "running": 0, "terminal": len(admitted)}
    pools = http.get("/v1/pools")
    assert pools.status_code == 200
    assert pools.json()["pools"][0]["ready"] is True
    assert get_task(http, admit(http, session_id, "after")["task_id"])["session_id"] == session_id


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
