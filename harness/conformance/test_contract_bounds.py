"""Every bound the spec states, on both sides, and every wait the server suggests.

A bound an implementation enforces but the spec never states lets a lower one
pass; a suggested wait the spec never defines lets one in the wrong unit pass.
So each bound of the spec is sent exactly at its value (accepted: not refused
for that field) and one past it (refused with 400 ``INVALID_PARAMS``, or 413
for the body size): ``X-Request-Id`` length (ORCH-0243), body size (ORCH-0009),
TTL (ORCH-0025), metadata keys and depth (ORCH-0247), prompt length (ORCH-0038),
``max_tokens`` and pool name length (ORCH-0039), seed range, sampler profile
length, temperature and top_p (ORCH-0040), ``session_id`` length (ORCH-0248).
One test per requirement, so a failure names the bound that broke.

The suggested wait of each 429/503 kind (ORCH-0244..ORCH-0246) is read back
from ``X-Backoff-Ms``, which is that wait plus 0 to 250 ms of jitter
(ORCH-0022), and the stream's ``retry:`` advice (ORCH-0249) is checked in
milliseconds. Bounds are checked against any target (defaults assumed, as for
the body limit); the refusal kinds need configured servers (``orch_serve``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness.engine.control import EngineControl, engine_pool, engine_replica, rule
from harness.plugin.target import ServeFactory
from harness.wire import Wire, error_kind, error_problems, expect, expect_error, read_stream
from orchestrator.vocabulary import MAX_BACKOFF_JITTER_MS as MAX_JITTER_MS

pytestmark = pytest.mark.contract

BODY_LIMIT = 1_048_576
SSE_RETRY_MS = 3000


@dataclass(frozen=True)
class Edge:
    """One side of a bound: the request and the answer it must get."""

    what: str
    path: str
    body: Any
    status: int
    kind: str | None = None
    """The error kind of a refusal (or of an answer past validation, like 404)."""


Build = Callable[[str], list[Edge]]
"""``build(session_id) -> edges``: the two sides of one requirement's bounds."""


def _task(session_id: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": session_id, "prompt": "bound", "max_tokens": 1, **fields}


def _params(session_id: str, **params: Any) -> dict[str, Any]:
    return _task(session_id, params=params)


def _nested(levels: int) -> dict[str, Any]:
    """``metadata`` whose innermost value sits ``levels`` levels deep (itself the first)."""
    value: Any = 1
    for _ in range(levels - 1):
        value = {"k": value}
    return {"k": value}


def _sides(
    what: str, path: str, accepted: Any, status: int, refused: Any, kind: str | None = None
) -> list[Edge]:
    return [
        Edge(f"{what} at the bound", path, accepted, status, kind),
        Edge(f"{what} one past the bound", path, refused, 400, "INVALID_PARAMS"),
    ]


def _ttl(_: str) -> list[Edge]:
    return [
        *_sides("ttl_seconds 1", "/v1/sessions", {"ttl_seconds": 1}, 201, {"ttl_seconds": 0}),
        *_sides(
            "ttl_seconds 86400", "/v1/sessions", {"ttl_seconds": 86400}, 201, {"ttl_seconds": 86401}
        ),
    ]


def _metadata(_: str) -> list[Edge]:
    return [
        *_sides(
            "a metadata key of 256 characters",
            "/v1/sessions",
            {"metadata": {"k" * 256: 1}},
            201,
            {"metadata": {"k" * 257: 1}},
        ),
        *_sides(
            "metadata nested 32 levels deep",
            "/v1/sessions",
            {"metadata": _nested(32)},
            201,
            {"metadata": _nested(33)},
        ),
    ]


def _prompt(sid: str) -> list[Edge]:
    return [
        *_sides(
            "a prompt of 1 character",
            "/v1/tasks",
            _task(sid, prompt="x"),
            202,
            _task(sid, prompt=""),
        ),
        *_sides(
            "a prompt of 32,768 characters",
            "/v1/tasks",
            _task(sid, prompt="x" * 32768),
            202,
            _task(sid, prompt="x" * 32769),
        ),
    ]


def _task_fields(sid: str) -> list[Edge]:
    unknown = "NOT_FOUND"  # a valid name that names no pool
    return [
        *_sides(
            "max_tokens 1", "/v1/tasks", _task(sid, max_tokens=1), 202, _task(sid, max_tokens=0)
        ),
        *_sides(
            "max_tokens 4096",
            "/v1/tasks",
            _task(sid, max_tokens=4096),
            202,
            _task(sid, max_tokens=4097),
        ),
        *_sides(
            "a pool name of 64 characters",
            "/v1/tasks",
            _task(sid, pool="p" * 64),
            404,
            _task(sid, pool="p" * 65),
            unknown,
        ),
        Edge("an empty pool name", "/v1/tasks", _task(sid, pool=""), 400, "INVALID_PARAMS"),
    ]


def _task_params(sid: str) -> list[Edge]:
    return [
        *_sides("seed 0", "/v1/tasks", _params(sid, seed=0), 202, _params(sid, seed=-1)),
        *_sides(
            "seed 2^63 - 1",
            "/v1/tasks",
            _params(sid, seed=2**63 - 1),
            202,
            _params(sid, seed=2**63),
        ),
        *_sides(
            "a sampler_profile_version of 1 character",
            "/v1/tasks",
            _params(sid, sampler_profile_version="v"),
            202,
            _params(sid, sampler_profile_version=""),
        ),
        *_sides(
            "a sampler_profile_version of 64 characters",
            "/v1/tasks",
            _params(sid, sampler_profile_version="v" * 64),
            202,
            _params(sid, sampler_profile_version="v" * 65),
        ),
        *_sides(
            "temperature 0",
            "/v1/tasks",
            _params(sid, temperature=0),
            202,
            _params(sid, temperature=-0.001),
        ),
        *_sides(
            "temperature 2",
            "/v1/tasks",
            _params(sid, temperature=2),
            202,
            _params(sid, temperature=2.001),
        ),
        *_sides(
            "top_p just above 0", "/v1/tasks", _params(sid, top_p=1e-9), 202, _params(sid, top_p=0)
        ),
        *_sides("top_p 1", "/v1/tasks", _params(sid, top_p=1), 202, _params(sid, top_p=1.001)),
    ]


def _session_id(_: str) -> list[Edge]:
    return [
        *_sides(
            "a session_id of 128 characters",
            "/v1/tasks",
            _task("s" * 128),
            404,
            _task("s" * 129),
            "NOT_FOUND",
        ),
        Edge("an empty session_id", "/v1/tasks", _task(""), 400, "INVALID_PARAMS"),
    ]


BOUNDS: dict[str, Build] = {
    "ORCH-0025": _ttl,
    "ORCH-0247": _metadata,
    "ORCH-0038": _prompt,
    "ORCH-0039": _task_fields,
    "ORCH-0040": _task_params,
    "ORCH-0248": _session_id,
}


@pytest.mark.parametrize(
    "req", [pytest.param(req, marks=pytest.mark.req(req), id=req) for req in BOUNDS]
)
def test_request_bounds_accept_their_value_and_refuse_one_past(wire: Wire, req: str) -> None:
    session_id = str(wire.new_session()["session_id"])
    failures = []
    for edge in BOUNDS[req](session_id):
        response = wire.post_json(edge.path, edge.body)
        if response.status_code == 201 and edge.path == "/v1/sessions":
            wire.sessions.append(str(response.json()["session_id"]))
        got_kind = error_kind(response)
        if response.status_code != edge.status or (edge.kind and got_kind != edge.kind):
            want = f"{edge.status} {edge.kind}" if edge.kind else str(edge.status)
            failures.append(
                f"{req}: {edge.what} must answer {want}; got "
                f"{response.status_code} {got_kind or response.text[:160]}"
            )
        elif response.status_code >= 400 and (problems := error_problems(response)):
            failures.append(f"ORCH-0014: {edge.what}: " + "; ".join(problems))
    expect(not failures, "\n".join(failures))


@pytest.mark.req("ORCH-0009")
def test_body_of_exactly_the_default_limit_is_accepted_and_one_more_byte_refused(
    wire: Wire,
) -> None:
    empty = len(json.dumps({"ttl_seconds": 60, "metadata": {"pad": ""}}).encode())
    for size, status in ((BODY_LIMIT, 201), (BODY_LIMIT + 1, 413)):
        body = json.dumps({"ttl_seconds": 60, "metadata": {"pad": "x" * (size - empty)}}).encode()
        assert len(body) == size
        response = wire.post_json("/v1/sessions", body)
        if response.status_code == 201:
            wire.sessions.append(str(response.json()["session_id"]))
        if status == 413:
            expect_error(
                response,
                413,
                "PAYLOAD_TOO_LARGE",
                "ORCH-0009",
                f"a {size}-byte body (limit {BODY_LIMIT} bytes by default)",
            )
        else:
            expect(
                response.status_code == 201,
                f"ORCH-0009: a body of exactly {size} bytes (the default limit) must be "
                f"accepted; got {response.status_code}: {response.text[:160]}",
            )


@pytest.mark.req("ORCH-0243", "ORCH-0004")
def test_request_id_of_128_characters_is_echoed_and_a_longer_one_replaced(wire: Wire) -> None:
    at_bound = ("r" * 120 + time.strftime("%H%M%S") + "ok")[:128]
    echoed = wire.http.get("/healthz", headers={"X-Request-Id": at_bound})
    expect(
        echoed.headers.get_list("x-request-id") == [at_bound],
        f"ORCH-0243: an X-Request-Id of 128 characters must be echoed; got "
        f"{echoed.headers.get_list('x-request-id')}",
    )
    longer = at_bound + "x"
    replaced = wire.http.get("/healthz", headers={"X-Request-Id": longer})
    got = replaced.headers.get_list("x-request-id")
    expect(
        replaced.status_code == 200 and len(got) == 1 and got[0] and got[0] != longer,
        f"ORCH-0243: a request whose X-Request-Id has 129 characters is served with an ID of "
        f"the server's own; got {replaced.status_code} with X-Request-Id {got}",
    )


# ---------------------------------------------------------------- suggested waits


def _backoff(response: Any) -> int:
    return int(response.headers["x-backoff-ms"])


def _wait_is(response: Any, low: float, high: float, req: str, what: str) -> None:
    """``X-Backoff-Ms`` is a suggested wait within [low, high] plus 0..250 ms of jitter."""
    backoff = _backoff(response)
    expect(
        low <= backoff <= high + MAX_JITTER_MS,
        f"{req}: {what}: X-Backoff-Ms is the suggested wait plus 0..{MAX_JITTER_MS} ms, so it "
        f"must lie between {low:.0f} and {high + MAX_JITTER_MS:.0f} ms; got {backoff}",
    )


@pytest.mark.req("ORCH-0244", "ORCH-0095", "ORCH-0098")
def test_full_queue_refusals_suggest_one_second(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    orch_engine.set_faults([rule({"hang_after_tokens": 1})])  # holders keep their slot
    target = orch_serve(
        pools=[
            engine_pool(orch_engine, "reject", ("r1",), queue_capacity=1, decode_timeout_ms=60_000),
            engine_pool(
                orch_engine,
                "lru",
                ("l1",),
                queue_capacity=1,
                overflow_policy="drop_lru",
                decode_timeout_ms=60_000,
            ),
        ]
    )
    with Wire(target.url, target.auth_headers()) as wire:
        wire.wait_ready()
        session = str(wire.new_session()["session_id"])
        for pool, queued_priority, refused_priority, kind, req in (
            ("reject", "interactive", "interactive", "ADMISSION_REJECT", "ORCH-0095"),
            ("lru", "interactive", "batch", "QUEUE_FULL_DROP_LRU", "ORCH-0098"),
        ):
            held = wire.admit(session, prompt="hold", pool=pool, max_tokens=50)
            wire.wait_running(str(held["task_id"]))
            wire.admit(session, prompt="queued", pool=pool, priority=queued_priority)
            body = {
                "session_id": session,
                "prompt": "refused",
                "pool": pool,
                "priority": refused_priority,
            }
            response = wire.post_json("/v1/tasks", body)
            expect_error(response, 429, kind, req, f"a full {pool!r} queue")
            _wait_is(response, 1000, 1000, "ORCH-0244", f"{kind} from the full {pool!r} queue")


@pytest.mark.req("ORCH-0245", "ORCH-0049")
def test_unavailable_pool_suggests_two_seconds(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    orch_engine.set_faults([rule({"unavailable": True}, replica="d1")])
    target = orch_serve(pools=[engine_pool(orch_engine, "down", ("d1",))], ready=[])
    with Wire(target.url, target.auth_headers()) as wire:
        session = str(wire.new_session()["session_id"])
        deadline = time.monotonic() + 10
        while wire.pool("down")["replicas"][0]["state"] != "down":
            expect(time.monotonic() < deadline, "ORCH-0121: the refused replica must be down")
            time.sleep(0.02)
        response = wire.post_json(
            "/v1/tasks", {"session_id": session, "prompt": "x", "pool": "down"}
        )
        expect_error(response, 503, "POOL_UNAVAILABLE", "ORCH-0049", "a pool with no replica up")
        _wait_is(response, 2000, 2000, "ORCH-0245", "POOL_UNAVAILABLE")


@pytest.mark.req("ORCH-0246", "ORCH-0048", "ORCH-0250")
def test_warming_pool_suggests_the_warm_up_time_left(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    warmup_ms = 10_000
    before = time.monotonic()
    warming = engine_replica(orch_engine, "w1", warmup_ms=warmup_ms)
    target = orch_serve(pools=[{"pool_id": "warming", "replicas": [warming]}], ready=[])
    with Wire(target.url, target.auth_headers()) as wire:
        state = wire.pool("warming")["replicas"][0]["state"]
        elapsed_ms = (time.monotonic() - before) * 1000
        expect(
            state == "warming" or elapsed_ms >= warmup_ms,
            f"ORCH-0250: a replica configured with warmup_ms {warmup_ms} must stay warming "
            f"that long, whatever its engine (an openai replica here); {elapsed_ms:.0f} ms "
            f"after the start it is {state!r}",
        )
        session = str(wire.new_session()["session_id"])
        response = wire.post_json(
            "/v1/tasks", {"session_id": session, "prompt": "x", "pool": "warming"}
        )
        elapsed_ms = (time.monotonic() - before) * 1000
        expect_error(response, 503, "POOL_UNREADY", "ORCH-0048", "a pool still warming up")
        _wait_is(
            response,
            max(1.0, warmup_ms - elapsed_ms),
            warmup_ms,
            "ORCH-0246",
            f"POOL_UNREADY {elapsed_ms:.0f} ms into a {warmup_ms} ms warm-up",
        )


# ---------------------------------------------------------------- the stream's retry advice


def _retry_advice(wire: Wire) -> list[str]:
    task_id = str(wire.admit(max_tokens=1)["task_id"])
    return read_stream(wire, task_id).retries


@pytest.mark.req("ORCH-0249", "ORCH-0073")
def test_retry_advice_is_the_default_delay_in_milliseconds(wire: Wire) -> None:
    retries = _retry_advice(wire)
    expect(
        retries == [str(SSE_RETRY_MS)],
        f"ORCH-0249: the stream's retry: line advises the reconnection delay in milliseconds "
        f"({SSE_RETRY_MS} by default); got {retries}",
    )


@pytest.mark.req("ORCH-0249")
def test_retry_advice_follows_the_configuration(orch_serve: ServeFactory) -> None:
    target = orch_serve(sse_retry_ms=1234)
    with Wire(target.url, target.auth_headers()) as wire:
        retries = _retry_advice(wire)
    expect(
        retries == ["1234"],
        f"ORCH-0249: with sse_retry_ms 1234 the retry: line must advise 1234; got {retries}",
    )
