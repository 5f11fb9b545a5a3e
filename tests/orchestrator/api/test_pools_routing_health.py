"""Pools, the persisted routing mode, and the health endpoints.

Beyond the conformance suite's shapes: the pools describe this configuration's own
values, in-flight counts and queue depths move with the work, and the routing mode
is persisted in the database across a restart (the configured one applies until
one is set).

Spec: ORCH-0119, ORCH-0120, ORCH-0121, ORCH-0122, ORCH-0123, ORCH-0124, ORCH-0125,
ORCH-0126, ORCH-0127, ORCH-0128, ORCH-0129, ORCH-0130, ORCH-0131.
"""

from __future__ import annotations

import httpx
import pytest

from tests.orchestrator.api.envelope import assert_error
from tests.orchestrator.wire import (
    HOLD_TOKENS,
    HttpFactory,
    admit,
    new_session,
    slow_pool,
    wait_state,
)
from tests.support import ConfigFactory, ServeFactory, pool

POOL_FIELDS = {
    "pool_id",
    "ready",
    "queue_capacity",
    "queue_depth",
    "overflow_policy",
    "max_attempts",
    "replicas",
    "batch_share_every",
    "decode_timeout_ms",  # beyond the spec: the rest of the pool's config
}
REPLICA_FIELDS = {"replica_id", "engine", "engine_version", "state", "in_flight", "slots"}


@pytest.mark.req("ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122")
def test_pools_describe_the_configuration(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    config = make_config(
        pools=[
            pool("default", replicas=2),
            pool(
                "batchy",
                replicas=[{"replica_id": "b1", "slots": 3}],
                queue_capacity=17,
                overflow_policy="drop_lru",
                max_attempts=5,
                batch_share_every=3,
                decode_timeout_ms=1234,
            ),
        ]
    )
    http = connect(serve(config))
    response = http.get("/v1/pools")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"pools"}
    default, batchy = body["pools"]
    for listed in (default, batchy):
        assert set(listed) == POOL_FIELDS
        assert listed["ready"] is True
        assert listed["queue_depth"] == {"interactive": 0, "batch": 0}
        for replica in listed["replicas"]:
            assert set(replica) == REPLICA_FIELDS
            assert (replica["engine"], replica["state"], replica["in_flight"]) == (
                "mock",
                "ready",
                0,
            )
            assert isinstance(replica["engine_version"], str)
        assert http.get(f"/v1/pools/{listed['pool_id']}").json() == listed
    assert default["pool_id"] == "default"
    configured = (default["queue_capacity"], default["overflow_policy"], default["max_attempts"])
    assert configured == (1024, "reject", 2)
    assert [r["replica_id"] for r in default["replicas"]] == ["r1", "r2"]
    assert batchy == {
        "pool_id": "batchy",
        "ready": True,
        "queue_capacity": 17,
        "queue_depth": {"interactive": 0, "batch": 0},
        "overflow_policy": "drop_lru",
        "max_attempts": 5,
        "batch_share_every": 3,
        "decode_timeout_ms": 1234,
        "replicas": [
            {
                "replica_id": "b1",
                "engine": "mock",
                "engine_version": batchy["replicas"][0]["engine_version"],
                "state": "ready",
                "in_flight": 0,
                "slots": 3,
            }
        ],
    }


@pytest.mark.req("ORCH-0123")
def test_pools_show_queue_depth_and_in_flight(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    http = connect(serve(make_config(pools=[slow_pool()])))
    session_id = new_session(http)
    running = admit(http, session_id, max_tokens=HOLD_TOKENS)["task_id"]
    wait_state(http, running, {"running"})
    for priority in ("interactive", "interactive", "batch"):
        admit(http, session_id, max_tokens=HOLD_TOKENS, priority=priority)
    listed = http.get("/v1/pools/default").json()
    assert listed["queue_depth"] == {"interactive": 2, "batch": 1}
    assert [(r["in_flight"], r["slots"]) for r in listed["replicas"]] == [(1, 1)]
    assert http.delete(f"/v1/sessions/{session_id}").status_code == 204
    listed = http.get("/v1/pools/default").json()
    assert listed["queue_depth"] == {"interactive": 0, "batch": 0}


# ---------------------------------------------------------------- routing


@pytest.mark.req("ORCH-0124", "ORCH-0125")
def test_routing_mode_get_and_put(http: httpx.Client) -> None:
    assert http.get("/v1/admin/routing").json() == {"fallback_mode": "aggressive_fallback"}
    for mode in ("intelligent_pacing", "aggressive_fallback", "intelligent_pacing"):
        response = http.put("/v1/admin/routing", json={"fallback_mode": mode})
        assert response.status_code == 200
        assert response.json() == {"fallback_mode": mode}
        assert http.get("/v1/admin/routing").json() == {"fallback_mode": mode}


@pytest.mark.parametrize(
    "body",
    [
        {"fallback_mode": "yolo"},
        {"fallback_mode": "AGGRESSIVE_FALLBACK"},
        {"fallback_mode": None},
        {"fallback_mode": 1},
        {},
        {"fallback_mode": "intelligent_pacing", "extra": 1},
        ["intelligent_pacing"],
    ],
)
@pytest.mark.req("ORCH-0126")
def test_invalid_routing_updates_are_400_and_change_nothing(
    http: httpx.Client, body: object
) -> None:
    assert_error(http.put("/v1/admin/routing", json=body), 400, "INVALID_PARAMS")
    assert http.get("/v1/admin/routing").json() == {"fallback_mode": "aggressive_fallback"}


@pytest.mark.req("ORCH-0127")
def test_routing_mode_is_persisted_across_a_restart(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    config = make_config()
    first = serve(config)
    response = connect(first).put("/v1/admin/routing", json={"fallback_mode": "intelligent_pacing"})
    assert response.status_code == 200
    first.stop()
    second = serve(config)
    assert connect(second).get("/v1/admin/routing").json() == {
        "fallback_mode": "intelligent_pacing"
    }


@pytest.mark.req("ORCH-0127", "ORCH-0128")
def test_configured_routing_mode_applies_until_one_is_persisted(
    serve: ServeFactory, make_config: ConfigFactory, connect: HttpFactory
) -> None:
    config = make_config(fallback_mode="intelligent_pacing")
    first = serve(config)
    http = connect(first)
    assert http.get("/v1/admin/routing").json() == {"fallback_mode": "intelligent_pacing"}
    http.put("/v1/admin/routing", json={"fallback_mode": "aggressive_fallback"})
    first.stop()
    # The persisted setting wins over the config's initial mode.
    again = connect(serve(config)).get("/v1/admin/routing")
    assert again.json() == {"fallback_mode": "aggressive_fallback"}


# ---------------------------------------------------------------- health


@pytest.mark.req("ORCH-0129", "ORCH-0130", "ORCH-0131")
def test_healthz_readyz_metrics(http: httpx.Client) -> None:
    health = http.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "pools": {"default": True}},
    )
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "orchq_build_info" in metrics.text
