"""Conformance: the run metrics of the runs profile (spec section 12.6, ORCH-0460..0462).

A configured target whose replicas are served by the harness's engine runs three
runs whose outcomes the harness makes happen: one that fails (a step's engine dies
mid-stream, so its dependant is skipped), one that completes, and one aborted while
its step runs. The growth of every run metric between a scrape before and one after
must equal what the runs' final states imply, and each start delay lie within the
time the harness measured around its run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.checks import expect, note_passed
from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.metrics import (
    Exposition,
    Violation,
    configured_ids,
    exposition_violations,
    label_value_violations,
    load_lint,
    scrape,
)
from harness.metrics.exposition import expect_none
from harness.metrics.truth import Span, Truth, truth_violations
from harness.plugin.target import ServeFactory, Target
from harness.wire import Wire
from harness.wire.runs import definition, get_run, register, start_run, step, wait_run

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
    problems: list[Violation] = []
    for name, kind in RUN_METRICS.items():
        exposed = after.types.get(name) or after.types.get(name.removesuffix("_total"))
        if not exposed:
            problems.append(Violation(EXPOSED, f"{name} ({kind}) is not exposed"))
        elif exposed[0] != kind:
            problems.append(Violation(EXPOSED, f"{name} is a {exposed[0]}, the table says {kind}"))
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
