"""Sub-orchestrations across a crash (spec section 12.8), for any target the harness can start.

A fan-out of slow children is killed (SIGKILL) while some children decode and
others wait for a place of ``max_parallel``, started again on the same state,
and judged: the parent step goes on and completes with every item's output in
order (ORCH-0494), and no item got a second child (ORCH-0487). Against
``--orch-url`` a target cannot be restarted: skipped.
"""

from __future__ import annotations

import json

import pytest

from harness.checks import expect, orch_checks
from harness.engine.control import EngineControl, engine_pool, rule, unique_tag
from harness.plugin.target import ServeFactory
from harness.wire import Wire
from harness.wire.runs import definition, get_run, register, start_run, steps_by_id, wait_run

pytestmark = [pytest.mark.contract, pytest.mark.slow, pytest.mark.orch_profile("runs")]

SLOW_TOKEN_MS = 40
ITEMS = ["one", "two", "three", "four"]


@pytest.mark.req("ORCH-0487", "ORCH-0494")
def test_a_fan_out_killed_mid_flight_goes_on_without_a_second_child(
    orch_process: ServeFactory, orch_engine: EngineControl
) -> None:
    tag = unique_tag("fan restart")
    pool = engine_pool(orch_engine, "default", ("r1",), slots=4, decode_timeout_ms=600_000)
    target = orch_process(pools=[pool])
    orch_engine.set_faults([rule({"token_delay_ms": SLOW_TOKEN_MS}, prompt_contains=tag)])
    wire = Wire(target.url, target.auth_headers())
    leaf = unique_tag("leaf")[1:-1].replace(" ", "-")
    register(
        wire,
        definition(
            leaf,
            [
                {
                    "id": "write",
                    "prompt": f"{tag} {{{{ inputs.topic }}}}",
                    "max_tokens": 8,
                    "params": {"determinism": "strict"},  # replayed after a crash (ORCH-0341)
                }
            ],
            inputs={"topic": {"type": "string"}},
        ),
    )
    name = unique_tag("fan")[1:-1].replace(" ", "-")
    fan = {"items": "{{ inputs.t }}", "as": "topic", "max_parallel": 2}
    register(
        wire,
        definition(
            name,
            [{"id": "each", "run": {"definition": leaf, "version": "1"}, "for_each": fan}],
            inputs={"t": {"type": "list"}},
        ),
    )
    session = str(wire.new_session(ttl_seconds=900)["session_id"])
    run_id = str(start_run(wire, name, session, inputs={"t": ITEMS})["run_id"])
    before: list[str] = []
    for _ in range(4000):
        before = list(steps_by_id(get_run(wire, run_id))["each"]["children"])
        if before:
            break
    first_task = ""
    for _ in range(4000):
        first_task = str(steps_by_id(get_run(wire, before[0]))["write"]["task_id"] or "")
        if first_task:
            break
    wire.wait_task(
        first_task,
        lambda t: int(t.get("tokens_out") or 0) >= 2,
        "ORCH-0485: the first child's step runs once the child is created",
    )

    target.kill()
    target = target.restart()
    wire = wire.moved_to(target.url)
    try:
        with orch_checks() as check:
            with check("ORCH-0494"):
                after = wait_run(
                    wire,
                    run_id,
                    "ORCH-0494: a step waiting on its children goes on after a restart",
                    timeout=30,
                )
                each = steps_by_id(after)["each"]
                children = [get_run(wire, str(c)) for c in each["children"]]
                expect(
                    after["state"] == "completed"
                    and [c["state"] for c in children] == ["completed"] * len(ITEMS),
                    f"ORCH-0494: the run and every child complete after the restart; got "
                    f"{after['state']}, {[c['state'] for c in children]}",
                )
                outputs = [c["steps"][-1]["output"] for c in children]
                expect(
                    each["output"]
                    == json.dumps(outputs, ensure_ascii=False, separators=(",", ":")),
                    f"ORCH-0494: the output gathers every item's child; got {each['output']!r}",
                )
            with check("ORCH-0487"):
                expect(
                    each["children"][: len(before)] == before,
                    f"ORCH-0487: the children created before the crash stay the step's; before "
                    f"{before}, after {each['children']}",
                )
                listed = wire.http.get("/v1/runs", params={"definition": leaf}).json()["runs"]
                mine = [r["run_id"] for r in listed if r["session_id"] == session]
                expect(
                    sorted(mine) == sorted(each["children"]) and len(mine) == len(ITEMS),
                    f"ORCH-0487: one child run per item, never a second; the session has "
                    f"{len(mine)} runs of the child for {len(ITEMS)} items",
                )
    finally:
        wire.close()
