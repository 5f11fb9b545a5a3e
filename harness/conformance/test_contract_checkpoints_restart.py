"""A run paused at a checkpoint across a crash (spec sections 12.6, 12.7), for any target the
harness can start.

The target runs in a process of its own (``orch_process``). A run waits at the
``after`` checkpoint of its first step when the target is killed (SIGKILL) and
started again on the same state; then:

- the run is still ``awaiting_approval``, its checkpoint pending with the same
  id and output, and deciding it lets the run complete (ORCH-0372);
- the audit log kept what it held and goes on after it (ORCH-0383);
- the run's events keep their ids and continue without reusing one (ORCH-0351);
- ``orchq_checkpoints_pending`` counts the checkpoint again, before it is decided,
  and no longer once it is (ORCH-0463).

Against ``--orch-url`` a target cannot be restarted: skipped.
"""

from __future__ import annotations

import pytest

from harness.checks import expect, orch_checks
from harness.engine.control import EngineControl, engine_pool, unique_tag
from harness.metrics import scrape
from harness.plugin.target import ServeFactory
from harness.wire import Wire, read_stream
from harness.wire.checkpoints import approvals, audit, decide, wait_checkpoint
from harness.wire.runs import (
    definition,
    get_run,
    read_run_events,
    register,
    step,
    steps_by_id,
    wait_run,
)

pytestmark = [pytest.mark.contract, pytest.mark.slow, pytest.mark.orch_profile("runs")]


PENDING_METRIC = "orchq_checkpoints_pending"


def _pending_gauge(wire: Wire, url: str) -> tuple[float, int]:
    """``orchq_checkpoints_pending{when="after"}`` and the pending ``after`` checkpoints
    ``GET /v1/approvals`` lists (the target runs nothing else meanwhile)."""
    _, expo = scrape(url, wire.headers)
    listed = approvals(wire, state="pending", limit=100)["approvals"]
    return expo.total(PENDING_METRIC, when="after"), sum(1 for a in listed if a["when"] == "after")


@pytest.mark.req("ORCH-0351", "ORCH-0372", "ORCH-0383", "ORCH-0463")
def test_a_run_paused_at_a_checkpoint_is_still_paused_and_decidable_after_a_crash(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    pool = engine_pool(orch_engine, "default", ("r1",), slots=2)
    target = orch_process(pools=[pool])
    wire = Wire(target.url, target.auth_headers())
    name = unique_tag("paused")[1:-1].replace(" ", "-")
    register(
        wire,
        definition(
            name,
            [
                step("draft", params={"determinism": "strict"}, checkpoint={"when": "after"}),
                step("publish", "Publish {{ steps.draft.output }}", depends_on=["draft"]),
            ],
        ),
    )
    session = str(wire.new_session(ttl_seconds=900)["session_id"])
    created = wire.post_json(
        "/v1/runs",
        {"session_id": session, "definition": name, "version": "1", "seed": 3},
        headers={"X-Orch-Actor": "alice"},
    )
    expect(created.status_code == 202, f"ORCH-0317: POST /v1/runs answers 202: {created.text}")
    run_id = str(created.json()["run_id"])
    pending = wait_checkpoint(
        wire, run_id, "draft.after.1", "ORCH-0362: the step waits at its after checkpoint"
    )
    log_before = audit(wire, run_id)
    events_before = read_stream(
        wire,
        run_id,
        path=f"/v1/runs/{run_id}/events",
        on_event=lambda e: e.event == "checkpoint.requested",
    ).events

    target.kill()
    target = target.restart()
    wire = wire.moved_to(target.url)
    try:
        with orch_checks() as check:
            with check("ORCH-0372"):
                run = get_run(wire, run_id)
                expect(
                    run["state"] == "awaiting_approval"
                    and steps_by_id(run)["draft"]["state"] == "waiting_approval",
                    f"ORCH-0372: a run paused at the crash must still be paused; got {run}",
                )
                listed = approvals(wire, run_id=run_id, state="pending")["approvals"]
                expect(
                    listed == [pending],
                    f"ORCH-0372: its checkpoint must still be pending as it was: before "
                    f"{pending}, after {listed}",
                )
            with check("ORCH-0463"):
                gauge, listed_after = _pending_gauge(wire, target.url)
                expect(
                    listed_after >= 1 and gauge == listed_after,
                    f'ORCH-0463: after a restart {PENDING_METRIC}{{when="after"}} must count the '
                    f"pending checkpoints of the store: it is {gauge:g}, GET /v1/approvals "
                    f"lists {listed_after}",
                )
            with check("ORCH-0372"):
                decided = decide(wire, run_id, "draft.after.1", "continue", decided_by="bob")
                expect(
                    decided.status_code == 200,
                    f"ORCH-0372: the checkpoint must be decidable after the restart; got "
                    f"{decided.status_code}: {decided.text[:300]}",
                )
                after = wait_run(
                    wire, run_id, "ORCH-0372: the decided run must go on after the restart"
                )
                expect(
                    after["state"] == "completed"
                    and steps_by_id(after)["draft"]["output"] == pending["output"],
                    f"ORCH-0372: the run completes with the approved output; got {after}",
                )
            with check("ORCH-0463"):
                gauge, listed_after = _pending_gauge(wire, target.url)
                expect(
                    gauge == listed_after,
                    f"ORCH-0463: once the checkpoint is decided after a restart, {PENDING_METRIC}"
                    f'{{when="after"}} must be {listed_after}, as GET /v1/approvals lists; it is '
                    f"{gauge:g}",
                )
            with check("ORCH-0383"):
                log_after = audit(wire, run_id)
                expect(
                    log_after[: len(log_before)] == log_before
                    and [e.get("actor") for e in log_after[len(log_before) :]] == ["bob"],
                    f"ORCH-0383: the audit log keeps its entries across the restart and goes "
                    f"on: before {log_before}, after {log_after}",
                )
            with check("ORCH-0351"):
                events = read_run_events(wire, run_id)
                ids = events.ids
                expect(
                    ids == list(range(1, len(ids) + 1))
                    and [e.key() for e in events.events[: len(events_before)]]
                    == [e.key() for e in events_before],
                    f"ORCH-0351: the events before the crash keep their ids and the stream goes "
                    f"on without reusing one; got {[e.key() for e in events.events]}",
                )
    finally:
        wire.close()
