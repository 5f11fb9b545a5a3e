"""Sub-orchestrations (spec section 12.8): child runs, fan-out and fan-in, abort cascade.

What a client of the runs profile can observe: a step that runs a registered
definition as a child run, linked both ways and seeded as the spec derives it;
a fan-out over a ``list`` input that keeps at most ``max_parallel`` children
running and gathers their outputs in item order; the refusals of broken child
references at registration; a failing child under ``fail_fast`` and
``collect_all``; and the abort of a parent reaching every descendant. Checks
that need slow or hanging replicas start a target of their own on the
harness's engine (``serve_on_engine``) and skip against ``--orch-url``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest

from harness.checks import expect, orch_check
from harness.engine.control import EngineControl, ServeOnEngine, rule, unique_tag
from harness.wire import Wire, parse_rfc3339
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
from orchestrator.vocabulary import RUN_TERMINAL_STATES

pytestmark = [pytest.mark.contract, pytest.mark.orch_profile("runs")]


def _name(what: str) -> str:
    return unique_tag(what)[1:-1].replace(" ", "-")


def child_run(name: str, inputs: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    """The ``run`` of a step running ``name``@1."""
    return {"definition": name, "version": "1", "inputs": inputs or {}, **more}


def fan_out_seed(step_seed: int, item: int) -> int:
    """The seed of item ``item``'s child (ORCH-0485), computed here from the spec's words."""
    digest = hashlib.sha256(f"{step_seed}/{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _leaf(wire: Wire, tag: str, *more_inputs: str) -> str:
    """A one-step child definition taking ``topic`` (and ``more_inputs``, optional)."""
    name = _name("leaf")
    inputs: dict[str, dict[str, Any]] = {"topic": {"type": "string"}}
    inputs.update({extra: {"type": "string", "required": False} for extra in more_inputs})
    register(
        wire,
        definition(name, [step("write", f"{tag} about {{{{ inputs.topic }}}}")], inputs=inputs),
    )
    return name


def _refused_naming(response: Any, kind: str, path: str, req: str, what: str) -> None:
    """``response`` is 400 ``kind`` whose error's ``path`` is ``path``."""
    error = response.json().get("error", {}) if response.status_code == 400 else {}
    expect(
        error.get("kind") == kind and error.get("path") == path,
        f"{req}: {what} must answer 400 {kind} naming {path}; got {response.status_code}: "
        f"{response.text[:300]}",
    )


def _ms(value: Any) -> float:
    return parse_rfc3339(value, "ORCH-0005", "a timestamp").timestamp() * 1000


def _wait_children(wire: Wire, run_id: str, step_id: str, count: int) -> list[str]:
    deadline = time.monotonic() + 20
    while True:
        children = list(steps_by_id(get_run(wire, run_id))[step_id]["children"])
        if len(children) >= count or time.monotonic() > deadline:
            return children
        time.sleep(0.01)


# ---------------------------------------------------------------- one child run


@pytest.mark.req("ORCH-0480", "ORCH-0485", "ORCH-0488", "ORCH-0489", "ORCH-0490", "ORCH-0493")
def test_a_step_runs_a_child_run_linked_both_ways(wire: Wire) -> None:
    tag = unique_tag("child")
    leaf = _leaf(wire, tag)
    name = _name("parent")
    register(
        wire,
        definition(
            name,
            [
                step("intro", f"{tag} intro"),
                {
                    "id": "delegate",
                    "depends_on": ["intro"],
                    "run": child_run(
                        leaf, {"topic": "{{ inputs.topic }}/{{ steps.intro.output }}"}
                    ),
                },
                step("final", "end {{ steps.delegate.output }}", depends_on=["delegate"]),
            ],
            inputs={"topic": {"type": "string"}},
        ),
    )
    run = wait_run(wire, start_run(wire, name, inputs={"topic": "owls"}, seed=5)["run_id"])
    steps = steps_by_id(run)
    delegate = steps["delegate"]
    with orch_check("ORCH-0490", "ORCH-0480"):
        expect(run["state"] == "completed", f"ORCH-0490: the parent run completes; got {run}")
    with orch_check("ORCH-0488"):
        expect(
            run["parent_run_id"] is None and run["parent_step_id"] is None,
            f"ORCH-0488: a run created by POST has no parent; got {run}",
        )
        expect(
            len(delegate["children"]) == 1
            and delegate["task_id"] is None
            and delegate["attempts"] == [],
            f"ORCH-0488: the step lists its one child, no task and no attempt; got {delegate}",
        )
        expect(
            all(s["children"] == [] for s in run["steps"] if s["step_id"] != "delegate"),
            f"ORCH-0488: a step with a prompt has no children; got {run['steps']}",
        )
    child = get_run(wire, str(delegate["children"][0]))
    with orch_check("ORCH-0488"):
        expect(
            (child["parent_run_id"], child["parent_step_id"], child["parent_item"])
            == (run["run_id"], "delegate", 0)
            and child["session_id"] == run["session_id"],
            f"ORCH-0488: the child names its parent run, step and item 0, in the same "
            f"session; got {child}",
        )
    with orch_check("ORCH-0485"):
        intro = str(steps["intro"]["output"])
        expect(
            child["inputs"] == {"topic": f"owls/{intro}"}
            and child["seed"] == delegate["seed"]
            and child["max_parallel"] == run["max_parallel"],
            f"ORCH-0485: the child's inputs are the rendered templates, its seed the step's "
            f"({delegate['seed']}), its max_parallel the parent's; got {child}",
        )
    with orch_check("ORCH-0490"):
        expect(
            delegate["output"] == child["steps"][-1]["output"] and child["state"] == "completed",
            f"ORCH-0490: the step's output is its child's last step output; got "
            f"{delegate['output']!r}, the child {child}",
        )
    with orch_check("ORCH-0489"):
        events = read_run_events(wire, str(run["run_id"]))
        started = [e.data for e in events.events if e.event == "child.started"]
        expect(
            started == [{"step_id": "delegate", "item": 0, "child_run_id": child["run_id"]}],
            f"ORCH-0489: one child.started for the child; got {started}",
        )
        succeeded = [
            e.data
            for e in events.events
            if e.event == "step.succeeded"
            and isinstance(e.data, dict)
            and e.data.get("step_id") == "delegate"
        ]
        expect(
            len(succeeded) == 1 and succeeded[0]["task_id"] is None,
            f"ORCH-0490: step.succeeded of a step with run carries task_id null; got {succeeded}",
        )
    with orch_check("ORCH-0493"):
        audit = wire.http.get(f"/v1/runs/{child['run_id']}/audit").json()["entries"]
        expect(
            audit[0]["action"] == "run.created" and audit[0]["actor"] == "system",
            f"ORCH-0493: a child's log starts with run.created by system; got {audit}",
        )


# ---------------------------------------------------------------- fan-out and fan-in


@pytest.mark.req("ORCH-0481", "ORCH-0482", "ORCH-0485", "ORCH-0487", "ORCH-0490")
def test_a_fan_out_runs_one_child_per_item_and_gathers_them_in_order(
    serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(slots=8, token_delay_ms=10)
    tag = unique_tag("fan")
    orch_engine.set_faults([rule({"token_delay_ms": 80}, prompt_contains=f"{tag} about epsilon")])
    leaf = _leaf(wire, tag)
    name = _name("fan")
    topics = ["alpha", "beta", "gamma", "delta", "epsilon"]
    register(
        wire,
        definition(
            name,
            [
                {
                    "id": "each",
                    "run": child_run(leaf),
                    "for_each": {"items": "{{ inputs.topics }}", "as": "topic", "max_parallel": 2},
                },
                step("sum", "{{ inputs.topics }} {{ steps.each.output }}", depends_on=["each"]),
                {"id": "joined", "run": child_run(leaf, {"topic": "{{ inputs.topics }}"})},
            ],
            inputs={"topics": {"type": "list"}},
        ),
    )
    run = wait_run(wire, start_run(wire, name, inputs={"topics": topics}, seed=9)["run_id"])
    each = steps_by_id(run)["each"]
    children = [get_run(wire, str(c)) for c in each["children"]]
    with orch_check("ORCH-0481"):
        expect(
            run["state"] == "completed" and len(children) == len(topics),
            f"ORCH-0481: one child per item; got {len(children)} for {len(topics)}: {run}",
        )
        expect(
            [c["inputs"] for c in children] == [{"topic": t} for t in topics]
            and [c["parent_item"] for c in children] == list(range(len(topics))),
            f"ORCH-0481: child i gets item i as its 'as' input; got "
            f"{[(c['parent_item'], c['inputs']) for c in children]}",
        )
    with orch_check("ORCH-0485"):
        expect(
            [c["seed"] for c in children]
            == [fan_out_seed(int(each["seed"]), i) for i in range(len(topics))],
            f"ORCH-0485: child seeds derive from the step seed and the item; got "
            f"{[c['seed'] for c in children]}",
        )
    with orch_check("ORCH-0490"):
        outputs = [c["steps"][-1]["output"] for c in children]
        expect(
            each["output"] == json.dumps(outputs, ensure_ascii=False, separators=(",", ":")),
            f"ORCH-0490: the output is the compact JSON array of the children's outputs in "
            f"item order {outputs}; got {each['output']!r}",
        )
        late = [c for c in children if c["state"] != "completed" or not c["finished_at"]]
        expect(
            not late and _ms(each["finished_at"]) >= max(_ms(c["finished_at"]) for c in children),
            f"ORCH-0490: the step succeeds only once every child completed (the last item's "
            f"child is slow); the step ended at {each['finished_at']}, the children "
            f"{[(c['state'], c['finished_at']) for c in children]}",
        )
    with orch_check("ORCH-0482"):
        joined = get_run(wire, str(steps_by_id(run)["joined"]["children"][0]))
        expect(
            joined["inputs"] == {"topic": "\n".join(topics)},
            f"ORCH-0482: a list input renders as its items joined by line feeds; got "
            f"{joined['inputs']}",
        )
    with orch_check("ORCH-0487"):
        spans = sorted((_ms(c["created_at"]), _ms(c["finished_at"])) for c in children)
        most = max(sum(1 for s, e in spans if s <= at < e) for at, _ in spans)
        expect(
            most <= 2,
            f"ORCH-0487: at most max_parallel (2) children run at once; {most} did: {spans}",
        )


@pytest.mark.req("ORCH-0481", "ORCH-0490", "ORCH-0327")
def test_a_fan_out_over_no_item_succeeds_with_an_empty_array(wire: Wire) -> None:
    leaf = _leaf(wire, unique_tag("none"))
    name = _name("empty")
    register(
        wire,
        definition(
            name,
            [
                {
                    "id": "each",
                    "run": child_run(leaf),
                    "for_each": {"items": "{{ inputs.t }}", "as": "topic"},
                },
                step("side", "beside"),
            ],
            inputs={"t": {"type": "list"}},
        ),
    )
    run = wait_run(wire, start_run(wire, name, inputs={"t": []})["run_id"])
    each = steps_by_id(run)["each"]
    with orch_check("ORCH-0327"):
        side = steps_by_id(run)["side"]
        expect(
            len(side["attempts"]) == 1,
            f"ORCH-0327: a step started beside a fan-out that ends at once runs once; got {side}",
        )
    with orch_check("ORCH-0490"):
        expect(
            run["state"] == "completed" and each["output"] == "[]" and each["children"] == [],
            f"ORCH-0490: no item, no child, output []; got {run}",
        )


# ---------------------------------------------------------------- refusals


@pytest.mark.req("ORCH-0480", "ORCH-0482", "ORCH-0483", "ORCH-0484", "ORCH-0486")
def test_broken_child_references_are_refused_naming_the_field(wire: Wire) -> None:
    leaf = _leaf(wire, unique_tag("refused"), "note")
    fan = {"items": "{{ inputs.t }}", "as": "topic"}
    lists = {"t": {"type": "list"}, "s": {"type": "string"}, "n": {"type": "integer"}}

    def one(steps: list[dict[str, Any]]) -> dict[str, Any]:
        return definition(_name("bad"), steps, inputs=lists)

    cases: list[tuple[str, dict[str, Any], str]] = [
        ("ORCH-0480", one([{"id": "a"}]), "steps[0].prompt"),
        ("ORCH-0480", one([{"id": "a", "prompt": "x", "run": child_run(leaf)}]), "steps[0].prompt"),
        (
            "ORCH-0480",
            one([{"id": "a", "run": child_run(leaf), "pool": "default"}]),
            "steps[0].pool",
        ),
        (
            "ORCH-0480",
            one([{"id": "a", "run": child_run(leaf, {"topic": "{{ inputs.zz }}"})}]),
            "steps[0].run.inputs.topic",
        ),
        ("ORCH-0483", one([step("a", for_each=fan)]), "steps[0].for_each"),
        (
            "ORCH-0483",
            one(
                [
                    {
                        "id": "a",
                        "run": child_run(leaf),
                        "for_each": {**fan, "items": "{{ inputs.s }}"},
                    }
                ]
            ),
            "steps[0].for_each.items",
        ),
        (
            "ORCH-0483",
            one(
                [
                    {
                        "id": "a",
                        "run": child_run(leaf),
                        "for_each": {**fan, "items": "x{{ inputs.t }}"},
                    }
                ]
            ),
            "steps[0].for_each.items",
        ),
        (
            "ORCH-0483",
            one([{"id": "a", "run": child_run("never-registered-x")}]),
            "steps[0].run.version",
        ),
        (
            "ORCH-0483",
            one([{"id": "a", "run": child_run(leaf, {"topic": "x", "other": "y"})}]),
            "steps[0].run.inputs.other",
        ),
        ("ORCH-0483", one([{"id": "a", "run": child_run(leaf)}]), "steps[0].run.inputs"),
        (
            "ORCH-0483",
            one([{"id": "a", "run": child_run(leaf), "for_each": {**fan, "as": "missing"}}]),
            "steps[0].for_each.as",
        ),
        (
            "ORCH-0483",
            one([{"id": "a", "run": child_run(leaf, {"topic": "x"}), "for_each": fan}]),
            "steps[0].for_each.as",
        ),
    ]
    for req, document, path in cases:
        with orch_check(req):
            response = wire.post_json("/v1/definitions", document)
            _refused_naming(response, "INVALID_DEFINITION", path, req, "a broken definition")
    with orch_check("ORCH-0484"):
        deepest = leaf
        for _level in range(3):  # depth 2, 3, 4: each accepted
            document = definition(
                _name("level"),
                [{"id": "down", "run": child_run(deepest, {"topic": "t"})}],
                inputs={"topic": {"type": "string", "required": False}},
            )
            deepest = str(register(wire, document)["name"])
        too_deep = definition(
            _name("level"), [step("first"), {"id": "down", "run": child_run(deepest)}]
        )
        response = wire.post_json("/v1/definitions", too_deep)
        what = "a definition of depth 5"
        _refused_naming(response, "INVALID_DEFINITION", "steps[1].run", "ORCH-0484", what)
    with orch_check("ORCH-0482"):
        name = _name("lists")
        register(wire, definition(name, [step("a")], inputs={"t": {"type": "list"}}))
        session = str(wire.new_session()["session_id"])
        for bad in ("one", [1, 2], ["x"] * 257, ["y" * 32_769]):
            body = {"session_id": session, "definition": name, "version": "1", "inputs": {"t": bad}}
            response = wire.post_json("/v1/runs", body)
            what = f"a list input of {str(bad)[:40]}"
            _refused_naming(response, "INVALID_PARAMS", "inputs.t", "ORCH-0482", what)
    with orch_check("ORCH-0486"):
        name = _name("long")
        register(
            wire,
            definition(
                name,
                [{"id": "a", "run": child_run(leaf, {"topic": "x{{ inputs.s }}"})}],
                inputs={"s": {"type": "string"}},
            ),
        )
        run = wait_run(wire, start_run(wire, name, inputs={"s": "z" * 32_768})["run_id"])
        a = steps_by_id(run)["a"]
        expect(
            run["state"] == "failed"
            and a["state"] == "failed"
            and (a["error"] or {}).get("kind") == "INVALID_PARAMS"
            and a["children"] == [],
            f"ORCH-0486: a child input over 32,768 characters fails the step with "
            f"INVALID_PARAMS, creating no child; got {a}",
        )


# ---------------------------------------------------------------- failing children


@pytest.mark.req("ORCH-0495", "ORCH-0318")
def test_a_run_reaching_an_unknown_pool_through_its_children_is_refused(wire: Wire) -> None:
    tag = unique_tag("pools")
    section = _name("section")
    register(wire, definition(section, [step("write", f"{tag} write", pool="no-such-pool")]))
    middle = _name("middle")
    register(wire, definition(middle, [{"id": "fan", "run": child_run(section)}]))
    top = _name("top")
    register(
        wire,
        definition(top, [step("intro", f"{tag} intro"), {"id": "sub", "run": child_run(middle)}]),
    )
    session = str(wire.new_session()["session_id"])
    response = wire.post_json(
        "/v1/runs", {"session_id": session, "definition": top, "version": "1"}
    )
    path = f"steps.sub.run -> {middle}@1 steps.fan.run -> {section}@1 steps.write.pool"
    with orch_check("ORCH-0495"):
        error = response.json().get("error", {}) if response.status_code == 404 else {}
        message = str(error.get("message"))
        expect(
            error.get("kind") == "NOT_FOUND" and "no-such-pool" in message and path in message,
            f"ORCH-0495: a run whose grandchild names an unknown pool must answer 404 "
            f"NOT_FOUND naming the pool and {path!r}; got {response.status_code}: "
            f"{response.text[:300]}",
        )
        listed = wire.http.get("/v1/runs", params={"definition": top}).json()
        expect(
            listed.get("runs") == [],
            f"ORCH-0495: a refused run is not created; got {listed}",
        )


@pytest.mark.req("ORCH-0491")
@pytest.mark.parametrize("policy", ["fail_fast", "collect_all"])
def test_a_failing_child_fails_its_step_by_the_policy(
    policy: str, serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(pool_keys={"max_attempts": 1}, slots=8)
    tag = unique_tag(f"fail {policy}")
    orch_engine.set_faults(
        [
            rule({"die_after_tokens": 1}, prompt_contains=f"{tag} about bad"),
            rule({"token_delay_ms": 30}, prompt_contains=f"{tag} about slow"),
        ]
    )
    leaf = _leaf(wire, tag)
    name = _name("failing")
    fan = {"items": "{{ inputs.t }}", "as": "topic", "max_parallel": 2, "on_failure": policy}
    register(
        wire,
        definition(
            name,
            [
                {"id": "each", "run": child_run(leaf), "for_each": fan},
                step("after", "x", depends_on=["each"]),
            ],
            inputs={"t": {"type": "list"}},
        ),
    )
    items = ["slow", "bad", "ok", "ok2"]
    run = wait_run(wire, start_run(wire, name, inputs={"t": items})["run_id"])
    each = steps_by_id(run)["each"]
    children = {i: get_run(wire, str(c)) for i, c in enumerate(each["children"])}
    with orch_check("ORCH-0491"):
        expect(
            run["state"] == "failed" and each["state"] == "failed",
            f"ORCH-0491: a failed child fails its step and the run; got {run}",
        )
        bad = children[1]
        expect(
            bad["state"] == "failed" and each["error"] == bad["steps"][0]["error"],
            f"ORCH-0491: the step fails with the failed child's error; step {each['error']}, "
            f"child {bad}",
        )
        expect(
            all(c["state"] in RUN_TERMINAL_STATES for c in children.values()),
            f"ORCH-0491: no child runs on once the run ended; got "
            f"{ {i: c['state'] for i, c in children.items()} }",
        )
        if policy == "collect_all":
            expect(
                sorted(children) == [0, 1, 2, 3]
                and [children[i]["state"] for i in (0, 2, 3)] == ["completed"] * 3
                and _ms(each["finished_at"])
                >= max(_ms(c["finished_at"]) for c in children.values()),
                f"ORCH-0491: collect_all runs every item and fails once all ended; got "
                f"{ {i: c['state'] for i, c in children.items()} }",
            )
        else:
            expect(
                2 not in children or 3 not in children,
                f"ORCH-0491: fail_fast creates no child after the failure; got {sorted(children)}",
            )
            slow = children[0]
            expect(
                slow["state"] == "aborted" or _ms(slow["finished_at"]) <= _ms(each["finished_at"]),
                f"ORCH-0491: fail_fast aborts the other running children; got {slow}",
            )


# ---------------------------------------------------------------- abort cascade


@pytest.mark.req("ORCH-0492", "ORCH-0493")
@pytest.mark.parametrize("how", ["DELETE /v1/runs/{id}", "DELETE /v1/sessions/{id}"])
def test_ending_a_parent_aborts_every_descendant(
    how: str, serve_on_engine: ServeOnEngine, orch_engine: EngineControl
) -> None:
    wire = serve_on_engine(slots=8)
    tag = unique_tag("cascade")
    orch_engine.set_faults([rule({"hang_after_tokens": 1}, prompt_contains=tag)])
    leaf = _leaf(wire, tag)
    middle = _name("middle")
    register(
        wire,
        definition(
            middle,
            [{"id": "inner", "run": child_run(leaf, {"topic": "{{ inputs.topic }}"})}],
            inputs={"topic": {"type": "string"}},
        ),
    )
    name = _name("top")
    fan = {"items": "{{ inputs.t }}", "as": "topic", "max_parallel": 2}
    register(
        wire,
        definition(
            name,
            [{"id": "each", "run": child_run(middle), "for_each": fan}],
            inputs={"t": {"type": "list"}},
        ),
    )
    session = str(wire.new_session()["session_id"])
    run_id = str(start_run(wire, name, session, inputs={"t": ["a", "b", "c"]})["run_id"])
    middles = _wait_children(wire, run_id, "each", 2)
    leaves = [(_wait_children(wire, m, "inner", 1) or [""])[0] for m in middles]
    tasks: list[str] = []
    for leaf_id in leaves:
        for _ in range(2000):
            task = steps_by_id(get_run(wire, leaf_id))["write"]["task_id"] if leaf_id else None
            if task:
                tasks.append(str(task))
                break
            time.sleep(0.005)
    for task_id in tasks:
        wire.wait_running(task_id)
    if how.startswith("DELETE /v1/runs"):
        wire.http.delete(f"/v1/runs/{run_id}")
    else:
        wire.http.delete(f"/v1/sessions/{session}")
    with orch_check("ORCH-0492"):
        expect(
            len(middles) == 2 and len(leaves) == 2 and len(tasks) == 2,
            f"ORCH-0492: two children, each with a running grandchild, before the abort; got "
            f"{middles}, {leaves}, {tasks}",
        )
        parent = wait_run(wire, run_id)
        expect(parent["state"] == "aborted", f"ORCH-0492: the parent is aborted: {parent}")
        for descendant in [*middles, *leaves]:
            ended = wait_run(wire, descendant, "ORCH-0492: a descendant ends with its parent")
            expect(
                ended["state"] == "aborted",
                f"ORCH-0492: each descendant of an ended run is aborted; {descendant} is "
                f"{ended['state']}",
            )
        for task_id in tasks:
            task = wire.wait_terminal(task_id, timeout=5)
            expect(
                task["state"] == "cancelled",
                f"ORCH-0492: the grandchildren's tasks are cancelled; {task_id} is {task['state']}",
            )
        events = read_run_events(wire, middles[0])
        aborted = [e.data for e in events.events if e.event == "run.aborted"]
        expect(
            aborted == [{"run_id": middles[0], "message": "run aborted: parent run ended"}]
            or how.endswith("sessions/{id}"),
            f"ORCH-0492: the child's run.aborted says its parent ended; got {aborted}",
        )
    with orch_check("ORCH-0493"):
        audit = wire.http.get(f"/v1/runs/{middles[0]}/audit").json()["entries"]
        expect(
            audit[-1]["action"] == "run.aborted" and audit[-1]["actor"] == "system",
            f"ORCH-0493: the cascade is logged run.aborted by system; got {audit}",
        )
