"""Conformance: the /metrics contract (spec section 9, ``contracts/metrics.lint.json``).

Each test runs the same small workload (sessions, tasks streamed to the end,
refused requests) through the public client, scrapes ``/metrics`` before and
after it, and checks one requirement: the format (ORCH-0131), the promtool
rules (ORCH-0132), no request input in labels with per-label cardinality
budgets (ORCH-0133), the declared metric set with types and labels (ORCH-0134,
ORCH-0136), the token counter's exact growth (ORCH-0135) and every label value
in its declared closed set (ORCH-0242).

One check needs a configured target: its replicas are served by the harness's
engine, which gives a workload every terminal state, finish reason, error kind,
rejection and drop on purpose (:mod:`harness.metrics.known`); every counter of
the table must then equal that ground truth for every label set (ORCH-0240) and
every histogram hold exactly the known observations, in seconds, within the
durations the harness measured itself (ORCH-0241).

Against ``--orch-url`` the token delta is exact only while no other client
streams on that server: run the suite on a quiet target. The lint file is the
repository's, or ``$ORCHQ_METRICS_LINT`` for another implementation.
"""

from __future__ import annotations

import contextlib

import pytest

from harness.checks import expect, note_passed
from harness.engine.control import EngineControl, engine_pool, rule
from harness.metrics import (
    Exposition,
    Violation,
    configured_ids,
    contract_violations,
    exposition_violations,
    label_value_violations,
    load_lint,
    promtool_violations,
    scrape,
    token_violations,
)
from harness.metrics.exposition import expect_none
from harness.metrics.known import KnownWorkload
from harness.metrics.truth import truth_violations
from harness.metrics.workload import WorkloadResult, run_workload
from harness.plugin.target import ServeFactory, Target
from harness.wire import Wire
from orchestrator.vocabulary import PRIORITIES

pytestmark = pytest.mark.metrics

LANES = PRIORITIES


def _scrape(target: Target) -> Exposition:
    status, expo = scrape(target.url, target.auth_headers())
    expect_none(exposition_violations(status, expo))
    return expo


def _after_workload(target: Target) -> tuple[Exposition, WorkloadResult, Exposition]:
    before = _scrape(target)
    with target.client() as client:
        result = run_workload(client)
    return before, result, _scrape(target)


def _check(violations: list[Violation], *reqs: str) -> None:
    """The test's requirements hold: none of ``reqs`` has a violation (each blamed on its own)."""
    expect_none([v for v in violations if v.req in reqs])
    note_passed(reqs)


@pytest.mark.req("ORCH-0131")
def test_metrics_is_prometheus_text(orch_target: Target) -> None:
    status, expo = scrape(orch_target.url, orch_target.auth_headers())
    expect_none(exposition_violations(status, expo))


@pytest.mark.req("ORCH-0008")
def test_metrics_need_no_token_when_one_is_configured(orch_serve: ServeFactory) -> None:
    target = orch_serve(auth_token="metrics-s3cret")
    status, expo = scrape(target.url)  # deliberately without the token
    expect(status == 200, f"ORCH-0008: /metrics answered {status} without a token")
    expect_none(exposition_violations(status, expo))


@pytest.mark.req("ORCH-0132")
def test_promtool_rules_after_a_workload(orch_target: Target) -> None:
    _, _, after = _after_workload(orch_target)
    lint = load_lint()
    _check(promtool_violations(after, lint.prefix) + contract_violations(after, lint), "ORCH-0132")


@pytest.mark.req("ORCH-0133")
def test_no_request_input_in_labels_and_budgets_hold(orch_target: Target) -> None:
    _, result, after = _after_workload(orch_target)
    _check(contract_violations(after, load_lint(), result.request_inputs), "ORCH-0133")


@pytest.mark.req("ORCH-0134", "ORCH-0136")
def test_declared_metrics_types_and_labels(orch_target: Target) -> None:
    _, _, after = _after_workload(orch_target)
    _check(contract_violations(after, load_lint()), "ORCH-0134", "ORCH-0136")


@pytest.mark.req("ORCH-0242")
def test_label_values_are_in_their_closed_sets(orch_target: Target) -> None:
    _, _, after = _after_workload(orch_target)
    with Wire(orch_target.url, orch_target.auth_headers()) as wire:
        pools = wire.http.get("/v1/pools").json()
    _check(label_value_violations(after, load_lint(), configured_ids(pools)), "ORCH-0242")


@pytest.mark.req("ORCH-0240", "ORCH-0241", "ORCH-0242")
def test_metrics_equal_the_truth_of_a_workload_with_known_outcomes(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    workload = KnownWorkload(orch_engine)
    target = orch_serve(**workload.config(), ready=workload.ready_pools)
    lint = load_lint()
    before = _scrape(target)
    with Wire(target.url, target.auth_headers()) as wire:
        truth = workload.run(wire)
        after = _scrape(target)
        ids = configured_ids(wire.http.get("/v1/pools").json())
    problems = truth_violations(before, after, truth, lint)
    problems += label_value_violations(after, lint, ids)
    _check(problems, "ORCH-0240", "ORCH-0241", "ORCH-0242")


@pytest.mark.req("ORCH-0135")
def test_generated_tokens_grow_by_the_tokens_streamed(orch_target: Target) -> None:
    before, result, after = _after_workload(orch_target)
    assert result.tokens_streamed > 0, "ORCH-0135: the workload streamed no token at all"
    _check(token_violations(before, after, result.tokens_streamed), "ORCH-0135")


@pytest.mark.req("ORCH-0133", "ORCH-0134")
def test_rejections_and_drops_stay_within_budgets(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    """A configured server whose tiny queues refuse and drop: the kind/state/reason labels
    appear, and still only with closed-enum values within their budgets."""
    from orchestrator.client import OrchError

    orch_engine.slow(("r1", "r2"), 5)
    target = orch_serve(
        pools=[
            engine_pool(orch_engine, "default", ("r1",), queue_capacity=1),
            engine_pool(orch_engine, "lru", ("r2",), queue_capacity=1, overflow_policy="drop_lru"),
        ]
    )
    inputs: set[str] = set()
    kinds: list[str] = []
    admitted_ids: list[str] = []
    with target.client() as client:
        sid = client.create_session().session_id
        inputs.add(sid)
        for pool in ("default", "lru"):
            for n, priority in enumerate(LANES * 2):
                prompt = f"budget {pool} {n}"
                inputs.add(prompt)
                try:
                    admitted = client.submit_task(
                        sid, prompt, pool=pool, priority=priority, max_tokens=200, seed=777 + n
                    )
                except OrchError as exc:
                    kinds.append(exc.kind)
                else:
                    admitted_ids.append(admitted.task_id)
                    inputs.update({admitted.task_id, str(777 + n)})
        for task_id in admitted_ids:
            with contextlib.suppress(OrchError):  # a dropped task is terminal: 409
                client.cancel_task(task_id)
    assert "ADMISSION_REJECT" in kinds, f"ORCH-0095: no refusal from the full reject pool: {kinds}"
    assert "QUEUE_FULL_DROP_LRU" in kinds, f"ORCH-0098: no refusal from the drop_lru pool: {kinds}"
    after = _scrape(target)
    _check(contract_violations(after, load_lint(), inputs), "ORCH-0133", "ORCH-0134")


@pytest.mark.req("ORCH-0135")
def test_generated_tokens_count_a_retried_token_once(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    """A replica dies mid-decode and a strict task is retried on the other one: the tokens
    it regenerates were already streamed, so the counter must not count them again."""
    orch_engine.set_faults([rule({"die_after_tokens": 3}, replica="r1")])
    target = orch_serve(pools=[engine_pool(orch_engine, max_attempts=2)])
    before = _scrape(target)
    streamed = retried = 0
    with target.client() as client:
        sid = client.create_session().session_id
        for n in range(4):
            task_id = client.submit_task(
                sid, f"retry {n}", max_tokens=8, seed=4242 + n, determinism="strict"
            ).task_id
            stream = client.collect_stream(task_id)
            assert stream.ok, f"ORCH-0135 setup: strict task {task_id} did not complete"
            streamed += len(stream.tokens)
            retried += len(client.get_task(task_id).attempts) > 1
    assert retried, "ORCH-0135 setup: no task was retried, the check would be vacuous"
    _check(token_violations(before, _scrape(target), streamed), "ORCH-0135")
