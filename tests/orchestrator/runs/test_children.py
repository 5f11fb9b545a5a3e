"""Sub-orchestrations as pure values: registration checks, seeds, fan-in, the next move.

Spec: ORCH-0480..0487, ORCH-0490, ORCH-0491.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from orchestrator.runs import DefinitionError, DefinitionLimits, ParsedDefinition
from orchestrator.runs import validate_definition as validate
from orchestrator.runs.children import (
    MAX_RUN_DEPTH,
    aggregate,
    check_children,
    child_seed,
    depth,
    fan_out_items,
    next_move,
    registration_order,
)
from orchestrator.runs.inputs import InputError, check_inputs
from orchestrator.runs.templates import parse_template

LIMITS = DefinitionLimits()


def doc(name: str, *steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": name, "version": "1", "steps": list(steps), **more}


def child_step(child: str, inputs: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    return {"id": "c", "run": {"definition": child, "version": "1", "inputs": inputs or {}}, **more}


LEAF = validate(
    doc(
        "leaf",
        {"id": "w", "prompt": "{{ inputs.topic }}"},
        inputs={"topic": {"type": "string"}, "n": {"type": "integer", "required": False}},
    ),
    LIMITS,
)


def registry(*parsed: ParsedDefinition) -> Any:
    known = {(p.name, p.version): p for p in parsed}
    return lambda name, version: known.get((name, version))


def refused(document: dict[str, Any], *known: ParsedDefinition) -> str:
    with pytest.raises(DefinitionError) as caught:
        check_children(validate(document, LIMITS), registry(LEAF, *known))
    return caught.value.path


@pytest.mark.req("ORCH-0480", "ORCH-0483")
@pytest.mark.parametrize(
    ("step", "path"),
    [
        ({"id": "c"}, "steps[0].prompt"),
        ({"id": "c", "prompt": "p", "for_each": {"items": "{{ inputs.t }}", "as": "x"}}, None),
        (child_step("leaf", max_tokens=3), "steps[0].max_tokens"),
        (child_step("leaf", checkpoint={"when": "before"}), "steps[0].checkpoint"),
        (child_step("leaf", {"topic": "{{ steps.x.output }}"}), "steps[0].run.inputs.topic"),
        (
            child_step("leaf", for_each={"items": "{{ inputs.s }}", "as": "topic"}),
            "steps[0].for_each.items",
        ),
    ],
)
def test_the_shape_of_a_child_step_is_checked_when_read(step: dict[str, Any], path: str) -> None:
    inputs = {"t": {"type": "list"}, "s": {"type": "string"}}
    with pytest.raises(DefinitionError) as caught:
        validate(doc("p", step, inputs=inputs), LIMITS)
    assert caught.value.path == (path or "steps[0].for_each")


@pytest.mark.req("ORCH-0483")
def test_child_references_are_checked_against_the_registered_definitions() -> None:
    fan = {"items": "{{ inputs.t }}", "as": "topic"}
    lists = {"t": {"type": "list"}}
    assert refused(doc("p", child_step("nope"))) == "steps[0].run.version"
    assert refused(doc("p", child_step("leaf"))) == "steps[0].run.inputs"
    assert (
        refused(doc("p", child_step("leaf", {"topic": "x", "n": "1"}))) == "steps[0].run.inputs.n"
    )
    assert refused(doc("p", child_step("leaf", {"zz": "x"}))) == "steps[0].run.inputs.zz"
    as_n = child_step("leaf", {"topic": "x"}, for_each={**fan, "as": "n"})
    assert refused(doc("p", as_n, inputs=lists)) == "steps[0].for_each.as"
    both = child_step("leaf", {"topic": "x"}, for_each=fan)
    assert refused(doc("p", both, inputs=lists)) == "steps[0].for_each.as"
    check_children(
        validate(doc("p", child_step("leaf", for_each=fan), inputs=lists), LIMITS), registry(LEAF)
    )


@pytest.mark.req("ORCH-0484")
def test_nesting_deeper_than_four_levels_is_refused() -> None:
    chain = [LEAF]
    for level in range(MAX_RUN_DEPTH - 1):
        topic = {"topic": {"type": "string", "required": False}}
        step = child_step(chain[-1].name, {"topic": "t"})
        parent = validate(doc(f"l{level}", step, inputs=topic), LIMITS)
        check_children(parent, registry(*chain))
        chain.append(parent)
    assert depth(chain[-1], registry(*chain)) == MAX_RUN_DEPTH
    deep = doc("deep", {"id": "a", "prompt": "p"}, {**child_step(chain[-1].name), "id": "b"})
    assert refused(deep, *chain) == "steps[1].run"


@pytest.mark.req("ORCH-0482")
def test_a_list_input_holds_strings_and_renders_one_per_line() -> None:
    parsed = validate(
        doc("p", {"id": "a", "prompt": "[{{ inputs.t }}]"}, inputs={"t": {"type": "list"}}), LIMITS
    )
    assert check_inputs(parsed.document, {"t": ["a", "b"]}) == {"t": ["a", "b"]}
    for bad in ("a", [1], ["x"] * 257, ["y" * 32_769]):
        with pytest.raises(InputError):
            check_inputs(parsed.document, {"t": bad})
    assert parsed.templates["a"].render({"t": ["a", "b"]}, {}) == "[a\nb]"
    assert parse_template("{{ inputs.t }}").render({"t": []}, {}) == ""


@pytest.mark.req("ORCH-0485", "ORCH-0490")
def test_child_seeds_and_the_gathered_output_follow_the_spec_words() -> None:
    digest = hashlib.sha256(b"1234/2").digest()
    assert child_seed(1234, 2, fan_out=True) == int.from_bytes(digest[:8], "big") & (2**63 - 1)
    assert child_seed(1234, 0, fan_out=False) == 1234
    assert aggregate(["é", 'a"b'], fan_out=True) == '["é","a\\"b"]'
    assert json.loads(aggregate([], fan_out=True)) == []
    assert aggregate(["only"], fan_out=False) == "only"


@pytest.mark.req("ORCH-0487", "ORCH-0490", "ORCH-0491")
def test_the_next_move_keeps_the_limit_and_ends_by_the_policy() -> None:
    assert next_move(5, {}, 2, True).create == [0, 1]
    assert next_move(5, {0: "completed", 1: "running"}, 2, True).create == [2]
    assert next_move(5, {0: "running", 1: "running"}, 2, True).create == []
    done = next_move(2, {0: "completed", 1: "completed"}, 2, True)
    assert (done.create, done.outcome) == ([], "completed")
    fast = next_move(4, {0: "running", 1: "failed"}, 2, True)
    assert (fast.create, fast.outcome, fast.failed_item) == ([], "failed", 1)
    collect = next_move(4, {0: "running", 1: "aborted"}, 2, False)
    assert (collect.create, collect.outcome) == ([2], None)
    ended = next_move(3, {0: "completed", 1: "aborted", 2: "failed"}, 2, False)
    assert (ended.outcome, ended.failed_item) == ("failed", 1)
    assert next_move(0, {}, 2, True).outcome == "completed"


@pytest.mark.req("ORCH-0481")
def test_the_items_of_a_step() -> None:
    parsed = validate(
        doc(
            "p",
            child_step("leaf", for_each={"items": "{{ inputs.t }}", "as": "topic"}),
            inputs={"t": {"type": "list"}},
        ),
        LIMITS,
    )
    assert fan_out_items(parsed.document.steps[0], {"t": ["x", "y"]}) == ["x", "y"]
    single = validate(doc("q", child_step("leaf", {"topic": "x"})), LIMITS)
    assert fan_out_items(single.document.steps[0], {}) == [""]


def test_a_folder_registers_children_first_whatever_the_order() -> None:
    parent = validate(doc("a-parent", child_step("leaf", {"topic": "t"})), LIMITS)
    other = validate(doc("other", {"id": "x", "prompt": "p"}), LIMITS)
    ordered = registration_order([parent, other, LEAF])
    assert [p.name for p in ordered] == ["leaf", "a-parent", "other"]


@pytest.mark.req("ORCH-0313")
def test_a_prompt_step_keeps_its_digest_and_a_child_step_stores_only_its_keys() -> None:
    plain = validate(doc("p", {"id": "a", "prompt": "x"}), LIMITS).normalized()
    assert "run" not in plain["steps"][0] and "for_each" not in plain["steps"][0]
    fan = {"items": "{{ inputs.t }}", "as": "topic"}
    child = validate(
        doc("p", child_step("leaf", for_each=fan), inputs={"t": {"type": "list"}}), LIMITS
    )
    stored = child.normalized()["steps"][0]
    assert set(stored) == {"id", "depends_on", "run", "for_each"}
    assert stored["for_each"] == {**fan, "max_parallel": 4, "on_failure": "fail_fast"}
    assert validate(child.normalized(), LIMITS).digest() == child.digest()
