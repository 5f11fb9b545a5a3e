"""Conformance: the run metrics of the runs profile (spec sections 12.9, 12.10).

Runs with known outcomes (ORCH-0460..0462): a configured target whose replicas are
served by the harness's engine runs three runs whose outcomes the harness makes
happen: one that fails (a step's engine dies mid-stream, so its dependant is
skipped), one that completes, and one aborted while its step runs. The growth of
every run metric between a scrape before and one after must equal what the runs'
final states imply, and each start delay lie within the time the harness measured
around its run.

Checkpoints (ORCH-0463, ORCH-0464): three runs paused at a ``before`` checkpoint,
one decided ``continue``, one decided ``abort``, one aborted while it waits (its
checkpoint cancelled). The pending gauge must equal the pending checkpoints
``GET /v1/approvals`` lists, while they wait and after; the wait histogram must
grow by one observation per decision, none for the cancelled checkpoint.

Webhooks (ORCH-0420): the harness's receiver subscribed to two events of a run,
failing the first attempt once. The deliveries counter must grow by what the
receiver answered (two ``delivered``, one ``retried``), the attempt histogram by
every request it got, and the pending gauge equal the pending deliveries of the
delivery logs once all arrived.

The checkpoint and webhook checks run against any target (``--orch-url`` too, the
receiver reachable as ``--orch-webhook-bind`` says). Their truth is what the API
lists (:mod:`harness.metrics.ledger`), so other clients' checkpoints and deliveries
are counted too; the webhook check is skipped, never passed, on a target that still
has deliveries of other subscriptions pending, since those decide when its own go.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from harness.checks import expect, note_passed
from harness.conformance import NOT_VERIFIABLE_LIVE
from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.metrics import (
    Exposition,
    Violation,
    configured_ids,
    exposition_violations,
    label_value_violations,
    ledger,
    load_lint,
    scrape,
)
from harness.metrics.exposition import expect_none
from harness.metrics.truth import Span, Truth, truth_violations
from harness.plugin.target import ServeFactory, Target
from harness.webhooks import Receiver
from harness.wire import Wire
from harness.wire.checkpoints import decide, wait_checkpoint
from harness.wire.runs import (
    definition,
    get_run,
    register,
    start_run,
    step,
    unique_name,
    wait_run,
)

pytestmark = [pytest.mark.metrics, pytest.mark.orch_profile("runs")]

EXPOSED = "ORCH-0460"
CLOSED_SETS = "ORCH-0461"
START_DELAY = "ORCH-0462"
RUN_METRICS = {
    "orchq_runs_started_total": "counter",
    "orchq_runs_finished_total": "counter",
    "orchq_run_steps_finished_total": "counter",
    "orchq_run_step_start_delay_seconds": "histogram",
}
DELAY_METRIC = "orchq_run_step_start_delay_seconds"
CHECKPOINTS_PENDING = "ORCH-0463"
CHECKPOINT_WAIT = "ORCH-0464"
PENDING_METRIC = "orchq_checkpoints_pending"
WAIT_METRIC = "orchq_checkpoint_wait_seconds"
WEBHOOK_METRICS_REQ = "ORCH-0420"
WEBHOOK_METRICS = {
    "orchq_webhook_deliveries_total": "counter",
    "orchq_webhook_attempt_duration_seconds": "histogram",
    "orchq_webhook_deliveries_pending": "gauge",
}
LONG_TOKEN_DELAY_MS = 200


def _scrape(target: Target) -> Exposition:
    status, expo = scrape(target.url, target.auth_headers())
    expect_none(exposition_violations(status, expo))
    return expo


def _run(wire: Wire, name: str, session: str, abort_step: str | None = None) -> dict[str, Any]:
    """Start a run of ``name``; abort it once ``abort_step`` runs; its final state and how
    long the harness saw it live, in seconds."""
    sent = time.monotonic()
    run_id = str(start_run(wire, name, session)["run_id"])
    if abort_step is not None:
        deadline = time.monotonic() + 10
        while not any(
            s["step_id"] == abort_step and s["state"] == "running" and s["task_id"]
            for s in get_run(wire, run_id)["steps"]
        ):
            expect(time.monotonic() < deadline, f"ORCH-0326: step {abort_step} never started")
            time.sleep(0.01)
        wire.http.delete(f"/v1/runs/{run_id}")
    ended = wait_run(wire, run_id)
    ended["_seconds"] = time.monotonic() - sent
    return ended


def _truth(runs: list[dict[str, Any]]) -> Truth:
    truth = Truth()
    truth.count("orchq_runs_started_total", len(runs))
    for run in runs:
        truth.count("orchq_runs_finished_total", state=run["state"])
        for s in run["steps"]:
            truth.count("orchq_run_steps_finished_total", state=s["state"])
            attempts = s["attempts"]
            if attempts and attempts[0]["task_id"] is not None:
                truth.observe(DELAY_METRIC, Span.one(0.0, run["_seconds"]), pool=s["pool"])
    return truth


def _as(req: str, violations: list[Violation]) -> list[Violation]:
    return [Violation(req, v.message) for v in violations]


@pytest.mark.req(EXPOSED, CLOSED_SETS, START_DELAY)
def test_run_metrics_equal_the_truth_of_runs_with_known_outcomes(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> None:
    tag = unique_tag("run metrics")
    orch_engine.set_faults(
        [
            rule({"die_after_tokens": 1}, prompt_contains=f"{tag} break"),
            rule({"token_delay_ms": LONG_TOKEN_DELAY_MS}, prompt_contains=f"{tag} long"),
        ]
    )
    target = orch_serve(pools=[engine_pool(orch_engine, max_attempts=1)])
    before = _scrape(target)
    with Wire(target.url, target.auth_headers()) as wire:
        suffix = tag.strip("[]").split()[-1]
        failing = definition(
            f"metrics-fails-{suffix}",
            [
                step("a", f"{tag} a"),
                step("b", f"{tag} b", depends_on=["a"]),
                step("c", f"{tag} break", depends_on=["a"]),
                step("d", f"{tag} d", depends_on=["b", "c"]),
            ],
        )
        completing = definition(f"metrics-completes-{suffix}", [step("a", f"{tag} ok")])
        aborted = definition(
            f"metrics-aborted-{suffix}", [step("long", f"{tag} long", max_tokens=200)]
        )
        for document in (failing, completing, aborted):
            register(wire, document)
        session = str(wire.new_session()["session_id"])
        runs = [
            _run(wire, failing["name"], session),
            _run(wire, completing["name"], session),
            _run(wire, aborted["name"], session, abort_step="long"),
        ]
        after = _scrape(target)
        ids = configured_ids(wire.http.get("/v1/pools").json())
    designed = ["failed", "completed", "aborted"]
    expect(
        [r["state"] for r in runs] == designed,
        f"ORCH-0328: the runs of this check must end {designed} (a step whose engine dies "
        f"fails its run, a run aborted while a step runs is aborted); they ended "
        f"{[r['state'] for r in runs]}",
    )
    lint = load_lint()
    problems = _exposed_as(after, RUN_METRICS, EXPOSED)
    grown = truth_violations(before, after, _truth(runs), lint, names=RUN_METRICS)
    problems += _as(EXPOSED, [v for v in grown if DELAY_METRIC not in v.message])
    problems += _as(START_DELAY, [v for v in grown if DELAY_METRIC in v.message])
    closed = label_value_violations(after, lint, ids)
    problems += _as(
        CLOSED_SETS,
        [v for v in closed if any(v.message.startswith(name) for name in RUN_METRICS)],
    )
    expect_none(problems)
    note_passed((EXPOSED, CLOSED_SETS, START_DELAY))


def _exposed_as(expo: Exposition, table: dict[str, str], req: str) -> list[Violation]:
    out = []
    for name, kind in table.items():
        exposed = expo.types.get(name) or expo.types.get(name.removesuffix("_total"))
        if not exposed:
            out.append(Violation(req, f"{name} ({kind}) is not exposed"))
        elif exposed[0] != kind:
            out.append(Violation(req, f"{name} is a {exposed[0]}, the spec says {kind}"))
    return out


def _gauge(expo: Exposition, name: str, label: str | None = None) -> dict[str, float]:
    """The gauge's value summed per value of ``label`` (``""`` for every sample)."""
    out: dict[str, float] = {}
    for family in expo.families:
        for s in family.samples:
            if s.name == name:
                key = s.labels.get(label, "") if label else ""
                out[key] = out.get(key, 0.0) + float(s.value)
    return out


def _pending_by_when(wire: Wire) -> dict[str, float]:
    counts: dict[str, float] = {}
    for approval in ledger.checkpoints(wire, "pending").values():
        counts[approval["when"]] = counts.get(approval["when"], 0.0) + 1
    return counts


def _pending_gauge_problems(target: Target, wire: Wire, moment: str) -> list[Violation]:
    expo, listed = ledger.stable_scrape(
        lambda: _scrape(target),
        lambda: _pending_by_when(wire),
        CHECKPOINTS_PENDING,
        "the pending checkpoints",
    )
    exposed = _gauge(expo, PENDING_METRIC, "when")
    return [
        Violation(
            CHECKPOINTS_PENDING,
            f'{PENDING_METRIC}{{when="{when}"}} is {exposed.get(when, 0.0):g} {moment}, but '
            f"GET /v1/approvals lists {listed.get(when, 0.0):g} pending checkpoints of that when",
        )
        for when in sorted(set(exposed) | set(listed))
        if exposed.get(when, 0.0) != listed.get(when, 0.0)
    ]


@pytest.mark.req(CHECKPOINTS_PENDING, CHECKPOINT_WAIT)
def test_checkpoint_metrics_follow_the_checkpoints(orch_target: Target, wire: Wire) -> None:
    name = unique_name("metrics-gate")
    register(wire, definition(name, [step("gate", checkpoint={"when": "before"})]))
    before, decided_before = ledger.stable_scrape(
        lambda: _scrape(orch_target),
        lambda: set(ledger.checkpoints(wire, "decided")),
        CHECKPOINT_WAIT,
        "the decided checkpoints",
    )
    problems = _exposed_as(before, {PENDING_METRIC: "gauge"}, CHECKPOINTS_PENDING)
    problems += _exposed_as(before, {WAIT_METRIC: "histogram"}, CHECKPOINT_WAIT)
    runs: dict[str, str] = {}
    for outcome in ("continue", "abort", "cancelled"):
        run_id = str(start_run(wire, name)["run_id"])
        wait_checkpoint(
            wire, run_id, "gate.before.1", "ORCH-0361: the run must pause at its checkpoint"
        )
        runs[outcome] = run_id
    problems += _pending_gauge_problems(orch_target, wire, "while three checkpoints wait")
    for decision in ("continue", "abort"):
        response = decide(wire, runs[decision], "gate.before.1", decision)
        expect(
            response.status_code == 200,
            f"ORCH-0366: deciding {decision} must answer 200; got {response.status_code}: "
            f"{response.text[:300]}",
        )
    wire.http.delete(f"/v1/runs/{runs['cancelled']}")
    ended = [wait_run(wire, runs[o])["state"] for o in ("continue", "abort", "cancelled")]
    expect(
        ended == ["completed", "aborted", "aborted"],
        f"ORCH-0367, ORCH-0369, ORCH-0324: the runs of this check must end completed, "
        f"aborted, aborted; they ended {ended}",
    )
    problems += _pending_gauge_problems(orch_target, wire, "once every checkpoint ended")
    after, decided_after = ledger.stable_scrape(
        lambda: _scrape(orch_target),
        lambda: ledger.checkpoints(wire, "decided"),
        CHECKPOINT_WAIT,
        "the decided checkpoints",
    )
    mine = {(runs[d], "gate.before.1") for d in ("continue", "abort")}
    expect(
        mine <= set(decided_after) - decided_before,
        f"ORCH-0365: GET /v1/approvals?state=decided must list the two checkpoints this "
        f"check decided ({sorted(mine)})",
    )
    truth = Truth()
    for key in set(decided_after) - decided_before:
        approval = decided_after[key]
        seconds = ledger.wait_seconds(approval)
        # requested_at and decided_at may be rounded to the second by an implementation
        span = Span.one(max(0.0, seconds - 1), seconds + 1)
        truth.observe(WAIT_METRIC, span, decision=approval["decision"])
    grown = truth_violations(before, after, truth, load_lint(), names=[WAIT_METRIC])
    problems += _as(CHECKPOINT_WAIT, grown)
    closed = label_value_violations(after, load_lint(), {})
    problems += [
        Violation(
            CHECKPOINTS_PENDING if PENDING_METRIC in v.message else CHECKPOINT_WAIT, v.message
        )
        for v in closed
        if PENDING_METRIC in v.message or WAIT_METRIC in v.message
    ]
    expect_none(problems)
    note_passed((CHECKPOINTS_PENDING, CHECKPOINT_WAIT))


@pytest.mark.req(WEBHOOK_METRICS_REQ)
def test_webhook_metrics_equal_what_the_receiver_got(
    orch_target: Target, wire: Wire, orch_webhook_receiver: Receiver
) -> None:
    name = unique_name("metrics-hooked")
    register(wire, definition(name, [step("only")]))
    receiver = orch_webhook_receiver
    subscription = {
        "url": receiver.url,
        "events": ["run.started", "run.completed"],
        "secret": receiver.secret,
    }
    response = wire.post_json("/v1/webhooks", subscription)
    expect(
        response.status_code == 201,
        f"ORCH-0402: POST /v1/webhooks of a valid subscription must answer 201; got "
        f"{response.status_code}: {response.text[:300]}",
    )
    webhook_id = str(response.json()["webhook_id"])
    try:
        before, logged_before = ledger.stable_scrape(
            lambda: _scrape(orch_target),
            lambda: ledger.deliveries(wire),
            WEBHOOK_METRICS_REQ,
            "the delivery logs",
        )
        backlog = sum(1 for d in logged_before.values() if d.state == "pending")
        if backlog:
            pytest.skip(
                f"{NOT_VERIFIABLE_LIVE}: {backlog} deliveries of other subscriptions are "
                "pending on this target, so when it sends this check's deliveries is not the "
                "harness's to know; run the check on a quiet target"
            )
        receiver.fail_next(1, 500)
        sent = time.monotonic()
        run_id = str(start_run(wire, name)["run_id"])
        expect(
            wait_run(wire, run_id)["state"] == "completed",
            "ORCH-0326: a run of one step on a healthy engine must complete",
        )
        receiver.wait_for("run.started", run_id)
        receiver.wait_for("run.completed", run_id)
        receiver.assert_all_verified()
        mine = [r for r in receiver.records() if r.run_id == run_id]
        elapsed = time.monotonic() - sent
        after, logged_after = ledger.stable_scrape(
            lambda: _scrape(orch_target),
            lambda: ledger.deliveries(wire),
            WEBHOOK_METRICS_REQ,
            "the delivery logs",
        )
    finally:
        wire.http.delete(f"/v1/webhooks/{webhook_id}")
    answered_2xx = sum(1 for r in mine if 200 <= r.status < 300)
    expect(
        answered_2xx == 2 and len(mine) == 3,
        f"ORCH-0413, ORCH-0414: the receiver failed the first attempt once, so two deliveries "
        f"take three attempts; it got {[r.summary() for r in mine]}",
    )
    # what other subscriptions' attempts made meanwhile, from their delivery logs
    mine_ids = {r.delivery_id for r in mine}
    logged = ledger.attempt_outcomes(
        {k: v for k, v in logged_before.items() if k not in mine_ids},
        {k: v for k, v in logged_after.items() if k not in mine_ids},
    )
    truth = Truth()
    counter = "orchq_webhook_deliveries_total"
    truth.count(counter, answered_2xx + logged["delivered"], outcome="delivered")
    truth.count(counter, len(mine) - answered_2xx + logged["retried"], outcome="retried")
    truth.count(counter, logged["failed"], outcome="failed")
    others = sum(logged.values())
    # one lane per subscription and run (ORCH-0415): the receiver's attempts follow one
    # another within the time the harness measured; others' attempts are not timed
    duration = "orchq_webhook_attempt_duration_seconds"
    truth.observe(duration, Span(len(mine), 0.0, elapsed, 0.0, elapsed))
    truth.observe(duration, Span(others, 0.0, math.inf, 0.0, math.inf))
    problems = _exposed_as(after, WEBHOOK_METRICS, WEBHOOK_METRICS_REQ)
    grown = truth_violations(before, after, truth, load_lint(), names=WEBHOOK_METRICS)
    problems += _as(WEBHOOK_METRICS_REQ, grown)
    gauge = _gauge(after, "orchq_webhook_deliveries_pending").get("", 0.0)
    pending = sum(1 for d in logged_after.values() if d.state == "pending")
    if gauge != pending:
        problems.append(
            Violation(
                WEBHOOK_METRICS_REQ,
                f"orchq_webhook_deliveries_pending is {gauge:g}, but the delivery logs hold "
                f"{pending} pending deliveries",
            )
        )
    expect_none(problems)
    note_passed((WEBHOOK_METRICS_REQ,))
