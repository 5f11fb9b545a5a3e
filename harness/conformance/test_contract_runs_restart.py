"""Runs across a crash (spec section 12.4), for any implementation the harness can start.

The target runs in a process of its own (``orch_process``), its replicas on the
harness's engine. A three-step chain of strict steps is killed (SIGKILL) while
its middle step decodes, started again on the same state, and judged:

- the run goes on and completes (ORCH-0341), the definition is still registered
  (ORCH-0340);
- the first step, which had succeeded, is not run again (ORCH-0342);
- every step's output equals that of a run of the same definition, inputs and
  seed on the restarted server (ORCH-0334);
- the events a client read before the crash keep their ids, and the stream goes
  on without reusing one (ORCH-0351).

Against ``--orch-url`` a target cannot be restarted: skipped.
"""

from __future__ import annotations

import pytest

from harness.checks import expect, orch_checks
from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.plugin.target import ServeFactory
from harness.wire import Wire, read_stream
from harness.wire.runs import (
    definition,
    get_run,
    read_run_events,
    register,
    start_run,
    step,
    steps_by_id,
    wait_run,
)

pytestmark = [pytest.mark.contract, pytest.mark.slow, pytest.mark.orch_profile("runs")]

SLOW_TOKEN_MS = 40
MIDDLE_TOKENS = 40


@pytest.mark.req("ORCH-0334", "ORCH-0340", "ORCH-0341", "ORCH-0342", "ORCH-0351")
def test_a_run_killed_mid_step_continues_where_it_was(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    tag = unique_tag("run restart")
    pool = engine_pool(orch_engine, "default", ("r1",), slots=4, decode_timeout_ms=600_000)
    target = orch_process(pools=[pool])
    orch_engine.set_faults([rule({"token_delay_ms": SLOW_TOKEN_MS}, prompt_contains=f"{tag} slow")])
    wire = Wire(target.url, target.auth_headers())
    strict = {"determinism": "strict"}
    name = unique_tag("chain")[1:-1].replace(" ", "-")
    document = definition(
        name,
        [
            step("first", f"{tag} first", params=strict),
            step(
                "middle",
                f"{tag} slow {{{{ steps.first.output }}}}",
                depends_on=["first"],
                max_tokens=MIDDLE_TOKENS,
                params=strict,
            ),
            step("last", "end {{ steps.middle.output }}", depends_on=["middle"], params=strict),
        ],
    )
    register(wire, document)
    session = str(wire.new_session(ttl_seconds=900)["session_id"])
    run_id = str(start_run(wire, name, session, seed=11)["run_id"])
    middle_task = ""
    for _ in range(2000):
        middle_task = str(steps_by_id(get_run(wire, run_id))["middle"]["task_id"] or "")
        if middle_task:
            break
    wire.wait_task(
        middle_task,
        lambda t: int(t.get("tokens_out") or 0) >= 2,
        "ORCH-0327: the middle step's task runs once the first step succeeded",
    )
    before = get_run(wire, run_id)
    seen = read_stream(
        wire,
        run_id,
        path=f"/v1/runs/{run_id}/events",
        on_event=lambda e: isinstance(e.data, dict) and e.data.get("step_id") == "middle",
    )
    first_before = steps_by_id(before)["first"]

    target.kill()
    target = target.restart()
    wire = wire.moved_to(target.url)
    try:
        with orch_checks() as check:
            with check("ORCH-0341"):
                after = wait_run(
                    wire,
                    run_id,
                    "ORCH-0341: a run running at the crash must go on after the restart",
                    timeout=15,
                )
                expect(
                    after["state"] == "completed",
                    f"ORCH-0341: the run must complete after the restart; got {after}",
                )
            with check("ORCH-0340"):
                read = wire.http.get(f"/v1/definitions/{name}/versions/1")
                expect(
                    read.status_code == 200,
                    f"ORCH-0340: the registered definition must survive; got {read.status_code}",
                )
            with check("ORCH-0342"):
                first = steps_by_id(after)["first"]
                expect(
                    first["attempts"] == first_before["attempts"]
                    and first["output"] == first_before["output"],
                    f"ORCH-0342: the step that had succeeded must not run again: before "
                    f"{first_before}, after {first}",
                )
            with check("ORCH-0334"):
                fresh = wait_run(wire, str(start_run(wire, name, session, seed=11)["run_id"]))
                outputs = {s["step_id"]: s["output"] for s in after["steps"]}
                again = {s["step_id"]: s["output"] for s in fresh["steps"]}
                expect(
                    outputs == again,
                    f"ORCH-0334: strict steps must give the same tokens across the restart; "
                    f"the crashed run gave {outputs}, a fresh one {again}",
                )
            with check("ORCH-0351"):
                events = read_run_events(wire, run_id)
                ids = events.ids
                expect(
                    ids == list(range(1, len(ids) + 1)),
                    f"ORCH-0351: event ids 1, 2, 3 ... without reuse; got {ids}",
                )
                expect(
                    [e.key() for e in events.events[: len(seen.events)]]
                    == [e.key() for e in seen.events],
                    "ORCH-0351: the events read before the crash must keep their ids: "
                    f"before {[e.key() for e in seen.events]}, after "
                    f"{[e.key() for e in events.events]}",
                )
    finally:
        wire.close()
