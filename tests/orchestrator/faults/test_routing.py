"""Routing on an engine 429 (``fallback_mode``), with strictly scripted engines.

Every replica runs a :class:`ScriptedEngine`: a queue of outcomes that fails
loudly when a call finds it empty, and the ``scripted`` fixture fails the test
at teardown on leftover outcomes, extra calls or calls still in flight (a
mode leaked from one test into the next cannot pass silently). The first task on a fresh server
starts on ``r1`` (least loaded, ties rotate from the first replica); each test
asserts that, so a routing change shows up as a clear failure, not a leak.

Spec: ORCH-0049, ORCH-0055, ORCH-0100, ORCH-0101, ORCH-0102, ORCH-0103, ORCH-0104,
ORCH-0105, ORCH-0106, ORCH-0107, ORCH-0109, ORCH-0110, ORCH-0122, ORCH-0125, ORCH-0127,
ORCH-0128, ORCH-0151.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.client import OrchClient, OrchError
from orchestrator.config import Config
from orchestrator.server import ServerThread
from tests.orchestrator.faults.faultkit import (
    Orch,
    ScriptBook,
    assert_slots_free,
    attempt_rows,
    in_flight,
    parse_time,
    rate_limited,
    replica_states,
    reset_after,
    tokens,
    unavailable,
    wait_task,
)
from tests.support import config_with, pool

StartOrch = Callable[..., Orch]
MakeConfig = Callable[..., Config]

PACING_S = 0.3
LONG_RETRY_AFTER_S = 20.0


@pytest.fixture
def two_replicas(make_config: MakeConfig) -> Callable[..., Config]:
    def make(**keys: object) -> Config:
        return make_config(pools=[pool("default", replicas=2, max_attempts=3)], **keys)

    return make


@pytest.fixture
def connect(scripted: ScriptBook) -> Iterator[Callable[[Config], Orch]]:
    clients: list[OrchClient] = []

    def start(config: Config) -> Orch:
        server = scripted.serve(config)
        client = OrchClient(server.url)
        clients.append(client)
        return Orch(server, client, client.create_session().session_id)

    yield start
    for client in clients:
        client.close()


# ---------------------------------------------------------------- aggressive_fallback


@pytest.mark.req("ORCH-0100", "ORCH-0109", "ORCH-0151")
def test_aggressive_fallback_moves_to_another_replica_at_once(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    scripted.script("r1", rate_limited(LONG_RETRY_AFTER_S))
    scripted.script("r2", tokens())
    o = connect(two_replicas())
    assert o.client.get_routing().fallback_mode == "aggressive_fallback"

    began = time.monotonic()
    run = o.run("route me", max_tokens=6, seed=1, determinism="strict")
    elapsed = time.monotonic() - began

    assert run.terminal.event == "end"
    assert run.events[0].data["replica_id"] == "r2"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_RATE_LIMITED"),
        (2, "r2", "completed", None),
    ]
    assert scripted.call_log() == [
        ("r1", f"429(retry_after={LONG_RETRY_AFTER_S}s)"),
        ("r2", "tokens(all)"),
    ]
    # The engine asked for 20 s; aggressive_fallback does not wait for it.
    assert elapsed < LONG_RETRY_AFTER_S / 2, f"fallback took {elapsed:.1f} s"
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0101", "ORCH-0102", "ORCH-0109", "ORCH-0151")
def test_aggressive_fallback_with_every_replica_limited_exhausts(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    scripted.script("r1", rate_limited(LONG_RETRY_AFTER_S), rate_limited(LONG_RETRY_AFTER_S))
    scripted.script("r2", rate_limited(LONG_RETRY_AFTER_S))
    o = connect(two_replicas())

    run = o.run("nobody serves", max_tokens=6)

    assert run.kinds == ["error"]
    assert run.terminal.data["kind"] == "REPLICA_EXHAUSTED"
    rows = attempt_rows(run.task)
    assert [r[3] for r in rows] == ["ENGINE_RATE_LIMITED"] * 3
    assert [r[1] for r in rows][:2] == ["r1", "r2"]


# ---------------------------------------------------------------- intelligent_pacing


@pytest.mark.parametrize("how", ["admin_put", "config"])
@pytest.mark.req("ORCH-0110", "ORCH-0125", "ORCH-0128")
def test_intelligent_pacing_waits_retry_after_then_retries_the_same_replica(
    scripted: ScriptBook,
    connect: Callable[[Config], Orch],
    two_replicas: Callable[..., Config],
    how: str,
) -> None:
    scripted.script("r1", rate_limited(PACING_S), tokens())
    scripted.script("r2")  # r2 must never be called
    if how == "config":
        o = connect(two_replicas(fallback_mode="intelligent_pacing"))
    else:
        o = connect(two_replicas())
        assert o.client.set_routing("intelligent_pacing").fallback_mode == "intelligent_pacing"
    assert o.client.get_routing().fallback_mode == "intelligent_pacing"

    began = time.monotonic()
    run = o.run("pace me", max_tokens=6, seed=3, determinism="strict")
    elapsed = time.monotonic() - began

    assert run.terminal.event == "end"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_RATE_LIMITED"),
        (2, "r1", "completed", None),
    ]
    first, second = scripted.calls
    assert (first.replica_id, second.replica_id) == ("r1", "r1")
    # Lower bounds only: the engine's Retry-After was honoured.
    assert second.at - first.at >= PACING_S
    assert elapsed >= PACING_S
    a1, a2 = run.task.attempts
    assert a1.finished_at is not None
    gap = (parse_time(a2.started_at) - parse_time(a1.finished_at)).total_seconds()
    assert gap >= PACING_S - 0.002, f"attempt 2 started {gap:.3f} s after attempt 1 failed"
    assert_slots_free(o.client)


def test_intelligent_pacing_moves_on_when_the_preferred_replica_is_busy(
    scripted: ScriptBook, connect: Callable[[Config], Orch], make_config: MakeConfig
) -> None:
    """Pacing *prefers* the rate-limited replica; it is not pinned to it."""
    config = make_config(
        pools=[pool("default", replicas=[{"replica_id": "r1", "slots": 1}, {"replica_id": "r2"}])],
        fallback_mode="intelligent_pacing",
    )
    hog_tokens = tokens(100, token_delay_s=0.01)  # ~1 s, longer than the 0.6 s pacing
    scripted.script("r1", rate_limited(0.6), hog_tokens)
    scripted.script("r2", hog_tokens, tokens())
    o = connect(config)

    limited = o.submit("first", max_tokens=4)
    wait_task(o.client, limited, lambda t: [a.state for a in t.attempts] == ["failed"])
    # While it sleeps the Retry-After, two long tasks fill r2 (rotation) then r1's only slot.
    hogs = [o.submit(f"hog {n}", max_tokens=100) for n in (1, 2)]
    assert [o.client.get_task(h).replica_id for h in hogs] == ["r2", "r1"]

    paced = o.finish(limited)
    assert paced.terminal.event == "end"
    assert attempt_rows(paced.task) == [
        (1, "r1", "failed", "ENGINE_RATE_LIMITED"),
        (2, "r2", "completed", None),
    ]
    for hog in hogs:
        assert o.finish(hog).terminal.event == "end"
    assert_slots_free(o.client)


# ---------------------------------------------------------------- scripted resets


@pytest.mark.req("ORCH-0104", "ORCH-0105", "ORCH-0106")
def test_scripted_reset_is_retried_on_the_other_replica(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    scripted.script("r1", reset_after(2))
    scripted.script("r2", tokens())
    o = connect(two_replicas())

    run = o.run("reset me", max_tokens=5, seed=9, determinism="strict")

    assert run.terminal.event == "end"
    assert len(run.tokens) == 5
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "completed", None),
    ]


@pytest.mark.req("ORCH-0107")
def test_strict_retry_that_stops_short_of_the_sent_tokens_is_a_divergence(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    """r1 sent 5 tokens, then r2's replay ends after 3: r2 did not reproduce tokens 3 and 4.

    That is a divergence (ORCH-0107), not a completed task of 5 tokens.
    """
    scripted.script("r1", reset_after(5))
    scripted.script("r2", tokens(3))
    o = connect(two_replicas())

    run = o.run("short replay", max_tokens=8, seed=9, determinism="strict")

    assert run.kinds == ["started"] + ["token"] * 5 + ["error"]
    assert run.terminal.data["kind"] == "WORKER_RESET"
    assert "diverged" in run.terminal.data["message"]
    assert run.task.state == "failed"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "failed", "WORKER_RESET"),
    ]


@pytest.mark.req("ORCH-0055", "ORCH-0106")
def test_strict_retry_that_stops_where_the_reset_happened_completes(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    """A replay that reproduces every sent token and then stops is a legitimate ``stop``."""
    scripted.script("r1", reset_after(5))
    scripted.script("r2", tokens(5))
    o = connect(two_replicas())

    run = o.run("exact replay", max_tokens=8, seed=9, determinism="strict")

    assert run.terminal.event == "end"
    assert run.terminal.data["tokens_out"] == 5
    assert run.terminal.data["finish_reason"] == "stop"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "WORKER_RESET"),
        (2, "r2", "completed", None),
    ]


# ---------------------------------------------------------------- down replicas


@pytest.mark.req("ORCH-0103", "ORCH-0122", "ORCH-0151")
def test_unreachable_replica_is_taken_out_of_rotation(
    scripted: ScriptBook, connect: Callable[[Config], Orch], two_replicas: Callable[..., Config]
) -> None:
    scripted.script("r1", unavailable())
    scripted.script("r2", tokens(), tokens(), tokens())
    o = connect(two_replicas())
    scripted.unreachable.add("r1")  # its health probe fails from now on

    runs = [o.run(f"task {n}", max_tokens=3) for n in range(3)]

    assert [r.terminal.event for r in runs] == ["end"] * 3
    assert attempt_rows(runs[0].task) == [
        (1, "r1", "failed", "ENGINE_UNAVAILABLE"),
        (2, "r2", "completed", None),
    ]
    for run in runs[1:]:  # ORCH-0103: a down replica receives no new attempt
        assert attempt_rows(run.task) == [(1, "r2", "completed", None)]
    view = o.client.get_pool("default")
    assert view.ready is True
    assert {r.replica_id: r.state for r in view.replicas} == {"r1": "down", "r2": "ready"}
    assert_slots_free(o.client)


@pytest.mark.slow
@pytest.mark.req("ORCH-0049", "ORCH-0103")
def test_a_retry_whose_only_replica_is_down_waits_for_it_to_come_back(
    scripted: ScriptBook, connect: Callable[[Config], Orch], make_config: MakeConfig
) -> None:
    """Current behaviour (not fixed by the spec): the retry waits, unbounded, holding no slot.

    Meanwhile admission answers 503 POOL_UNAVAILABLE; once a probe (every 2 s)
    finds the replica again, the retry runs and the task completes.
    """
    scripted.script("r1", unavailable(), tokens())
    o = connect(make_config(pools=[pool("default", replicas=1, max_attempts=2)]))
    scripted.unreachable.add("r1")

    task_id = o.submit("wait for me", max_tokens=3)
    wait_task(o.client, task_id, lambda t: [a.state for a in t.attempts] == ["failed"])
    assert replica_states(o.client) == {"r1": "down"}
    assert o.client.get_task(task_id).state == "running"
    assert in_flight(o.client) == {"default/r1": 0}
    with pytest.raises(OrchError) as refused:
        o.submit("refused", max_tokens=3)
    assert (refused.value.status, refused.value.kind) == (503, "POOL_UNAVAILABLE")

    scripted.unreachable.clear()
    run = o.finish(task_id)

    assert run.terminal.event == "end"
    assert attempt_rows(run.task) == [
        (1, "r1", "failed", "ENGINE_UNAVAILABLE"),
        (2, "r1", "completed", None),
    ]
    probes = [at for rid, at in scripted.probes if rid == "r1"]
    assert all(b - a >= 1.95 for a, b in itertools.pairwise(probes[1:]))
    assert_slots_free(o.client)


# ---------------------------------------------------------------- persistence & isolation


@pytest.mark.req("ORCH-0127")
def test_fallback_mode_persists_across_a_restart(
    serve: Callable[..., ServerThread], make_config: MakeConfig
) -> None:
    config = make_config()
    first = serve(config)
    with OrchClient(first.url) as client:
        assert client.get_routing().fallback_mode == "aggressive_fallback"
        client.set_routing("intelligent_pacing")
    first.stop()

    second = serve(config)
    with OrchClient(second.url) as client:
        assert client.get_routing().fallback_mode == "intelligent_pacing"
        client.set_routing("aggressive_fallback")
    second.stop()

    third = serve(config)
    with OrchClient(third.url) as client:
        assert client.get_routing().fallback_mode == "aggressive_fallback"


@pytest.mark.req("ORCH-0127", "ORCH-0128")
def test_persisted_mode_wins_over_the_config_default(
    serve: Callable[..., ServerThread], make_config: MakeConfig
) -> None:
    config = make_config(fallback_mode="intelligent_pacing")
    first = serve(config)
    with OrchClient(first.url) as client:
        assert client.get_routing().fallback_mode == "intelligent_pacing"
        client.set_routing("aggressive_fallback")
    first.stop()

    second = serve(config)
    with OrchClient(second.url) as client:
        assert client.get_routing().fallback_mode == "aggressive_fallback"


@pytest.mark.parametrize("order", ["first", "second", "third"])
@pytest.mark.req("ORCH-0128")
def test_seed000_regression_each_database_starts_aggressive(
    scripted: ScriptBook,
    connect: Callable[[Config], Orch],
    two_replicas: Callable[..., Config],
    make_config: MakeConfig,
    tmp_path: Path,
    order: str,
) -> None:
    """A persisted ``intelligent_pacing`` must not leak into the next test's router.

    Every case (in whatever order, on whatever xdist worker) must start from the
    default on its own database, then leaves ``intelligent_pacing`` persisted
    behind it, the state that would leak. A leaked pacing mode would
    also make the 429 below wait 20 s and consume r1's script twice.
    """
    scripted.script("r1", rate_limited(LONG_RETRY_AFTER_S))
    scripted.script("r2", tokens())
    o = connect(two_replicas())
    assert o.client.get_routing().fallback_mode == "aggressive_fallback"

    began = time.monotonic()
    run = o.run("no leaked pacing", max_tokens=3)
    assert time.monotonic() - began < LONG_RETRY_AFTER_S / 2
    assert run.terminal.event == "end"
    assert [r[1] for r in attempt_rows(run.task)] == ["r1", "r2"]

    o.client.set_routing("intelligent_pacing")

    # Within the same test: a second server on a fresh database is not affected either.
    other = config_with(str(tmp_path / f"other-{order}.db"))
    fresh = scripted.serve(other)
    with OrchClient(fresh.url) as client:
        assert client.get_routing().fallback_mode == "aggressive_fallback"
    assert o.client.get_routing().fallback_mode == "intelligent_pacing"
