"""Pools, routing and health over raw HTTP (spec section 8): shapes, readiness, the routing mode.

``GET /v1/pools``, ``/healthz`` and ``/readyz`` answer with the declared fields; a pool
whose replicas are not ready or unavailable says so and refuses work with the spec's
kinds; the routing setting starts from the configuration and can be set. Checks that
need a configured server use ``orch_serve`` with replicas on the harness's engine and
skip against ``--orch-url``.
"""

from __future__ import annotations

import time

import pytest

from harness.engine.control import (
    EngineControl,
    engine_pool,
    engine_replica,
    rule,
)
from harness.plugin.target import ServeFactory
from harness.wire import Wire, expect, expect_error

pytestmark = pytest.mark.contract


POOL_FIELDS = {
    "pool_id",
    "ready",
    "queue_capacity",
    "queue_depth",
    "overflow_policy",
    "max_attempts",
    "batch_share_every",
    "decode_timeout_ms",
    "replicas",
}
REPLICA_FIELDS = {"replica_id", "engine", "engine_version", "state", "in_flight", "slots"}


# ---------------------------------------------------------------- 8 pools, routing, health


@pytest.mark.req("ORCH-0119", "ORCH-0120", "ORCH-0121", "ORCH-0122", "ORCH-0129", "ORCH-0130")
def test_pools_health_and_readiness_shapes(wire: Wire) -> None:
    response = wire.http.get("/v1/pools")
    expect(response.status_code == 200, f"ORCH-0119: GET /v1/pools: {response.status_code}")
    listing = response.json()
    expect(
        set(listing) == {"pools"} and isinstance(listing["pools"], list) and listing["pools"],
        f"ORCH-0119: GET /v1/pools answers {{'pools': [...]}}; got {str(listing)[:300]}",
    )
    all_ready = True
    for pool in listing["pools"]:
        expect(
            set(pool) == POOL_FIELDS and set(pool["queue_depth"]) == {"interactive", "batch"},
            f"ORCH-0120: a pool has exactly {sorted(POOL_FIELDS)}; got {str(pool)[:300]}",
        )
        states = []
        for replica in pool["replicas"]:
            expect(
                set(replica) == REPLICA_FIELDS
                and replica["state"] in {"warming", "ready", "draining", "down"}
                and 0 <= replica["in_flight"] <= replica["slots"],
                f"ORCH-0121: a replica has {sorted(REPLICA_FIELDS)} and a known state; got "
                f"{replica}",
            )
            states.append(replica["state"])
        expect(
            pool["ready"] == ("ready" in states),
            f"ORCH-0122: pool {pool['pool_id']} ready={pool['ready']} but replicas are {states}",
        )
        all_ready = all_ready and pool["ready"]
        single = wire.pool(str(pool["pool_id"]))
        expect(
            set(single) == POOL_FIELDS and single["pool_id"] == pool["pool_id"],
            f"ORCH-0119: GET /v1/pools/{{id}} answers that one pool; got {str(single)[:300]}",
        )
    health = wire.http.get("/healthz")
    expect(health.status_code == 200, f"ORCH-0129: /healthz must answer 200: {health.status_code}")
    ready = wire.http.get("/readyz")
    if all_ready:
        expect(ready.status_code == 200, f"ORCH-0130: /readyz with all pools ready: {ready}")
    else:
        expect_error(ready, 503, "POOL_UNREADY", "ORCH-0130", "/readyz with a pool not ready")


@pytest.mark.req("ORCH-0048", "ORCH-0049", "ORCH-0122", "ORCH-0129", "ORCH-0130", "ORCH-0021")
def test_unready_and_unavailable_pools(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    orch_engine.set_faults([rule({"unavailable": True}, replica="d1")])
    target = orch_serve(
        pools=[
            engine_pool(orch_engine, "default", ("r1",)),
            {
                "pool_id": "warming",
                "replicas": [engine_replica(orch_engine, "w1", warmup_ms=3_600_000)],
            },
            engine_pool(orch_engine, "down", ("d1",)),
        ],
        ready=["default"],
    )
    with Wire(target.url, target.auth_headers()) as wire:
        session_id = str(wire.new_session()["session_id"])
        for pool_id, status, kind, req in (
            ("warming", 503, "POOL_UNREADY", "ORCH-0048"),
            ("down", 503, "POOL_UNAVAILABLE", "ORCH-0049"),
        ):
            deadline = time.monotonic() + 10
            while True:
                pool = wire.pool(pool_id)
                states = [r["state"] for r in pool["replicas"]]
                if pool_id == "warming" or states == ["down"] or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            expect(
                pool["ready"] is False,
                f"ORCH-0122: pool {pool_id} with replicas {states} must not be ready",
            )
            response = wire.post_json(
                "/v1/tasks", {"session_id": session_id, "prompt": "x", "pool": pool_id}
            )
            expect_error(response, status, kind, req, f"a task for pool {pool_id!r}")
        health = wire.http.get("/healthz")
        expect(health.status_code == 200, f"ORCH-0129: /healthz whatever the pools: {health}")
        expect_error(
            wire.http.get("/readyz"),
            503,
            "POOL_UNREADY",
            "ORCH-0130",
            "/readyz while a pool has no ready replica",
        )


@pytest.mark.req("ORCH-0124", "ORCH-0125", "ORCH-0126")
def test_routing_setting_shape_and_refusal(wire: Wire) -> None:
    response = wire.http.get("/v1/admin/routing")
    current = response.json() if response.status_code == 200 else {}
    expect(
        response.status_code == 200
        and set(current) == {"fallback_mode"}
        and current["fallback_mode"] in {"aggressive_fallback", "intelligent_pacing"},
        f"ORCH-0124: GET /v1/admin/routing answers {{'fallback_mode'}}; got "
        f"{response.status_code}: {response.text[:200]}",
    )
    for bad in ({"fallback_mode": "yolo"}, {"fallback_mode": None}, {}, {"mode": "x"}):
        put = wire.http.put("/v1/admin/routing", json=bad)
        expect_error(put, 400, "INVALID_PARAMS", "ORCH-0126", f"PUT /v1/admin/routing {bad}")
    same = wire.http.put("/v1/admin/routing", json=current)
    expect(
        same.status_code == 200 and same.json() == current,
        f"ORCH-0125: PUT of a valid mode answers 200 with the setting; got {same.status_code}: "
        f"{same.text[:200]}",
    )
    after = wire.http.get("/v1/admin/routing").json()
    expect(after == current, f"ORCH-0126: a refused PUT must not change the mode; now {after}")


@pytest.mark.req("ORCH-0125", "ORCH-0128")
def test_routing_mode_starts_from_config_and_can_be_set(orch_serve: ServeFactory) -> None:
    for configured in ("aggressive_fallback", "intelligent_pacing"):
        overrides = {} if configured == "aggressive_fallback" else {"fallback_mode": configured}
        target = orch_serve(**overrides)
        with Wire(target.url, target.auth_headers()) as wire:
            got = wire.http.get("/v1/admin/routing").json()
            expect(
                got == {"fallback_mode": configured},
                f"ORCH-0128: until changed, the mode is the configured one ({configured}, "
                f"aggressive_fallback by default); got {got}",
            )
            other = (
                "intelligent_pacing"
                if configured == "aggressive_fallback"
                else "aggressive_fallback"
            )
            put = wire.http.put("/v1/admin/routing", json={"fallback_mode": other})
            read = wire.http.get("/v1/admin/routing").json()
            expect(
                put.status_code == 200 and put.json() == read == {"fallback_mode": other},
                f"ORCH-0125: PUT sets the mode and answers it; got {put.status_code} "
                f"{put.text[:200]}, then GET {read}",
            )
