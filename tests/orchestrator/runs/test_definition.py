"""Run definitions as pure values: validation naming the field, templates, seeds, backoff.

Spec: ORCH-0300..0311, ORCH-0332.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from orchestrator.runs import (
    DefinitionError,
    DefinitionLimits,
    MalformedDocument,
    backoff_ms,
    parse_definition,
    parse_template,
    step_seed,
    validate_definition,
)
from orchestrator.runs.templates import TemplateError

LIMITS = DefinitionLimits(max_steps=5, max_bytes=4096)


def doc(*steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": "d", "version": "1", "steps": list(steps), **more}


def s(step_id: str, prompt: str = "p", **more: Any) -> dict[str, Any]:
    return {"id": step_id, "prompt": prompt, **more}


@pytest.mark.req("ORCH-0303", "ORCH-0312", "ORCH-0313")
def test_defaults_are_filled_in_and_the_digest_ignores_how_they_were_written() -> None:
    terse = validate_definition(doc(s("a"), s("b", depends_on=["a"])), LIMITS)
    explicit = validate_definition(
        doc(s("a", max_tokens=64, pool="default"), s("b", depends_on=["a"]), inputs={}), LIMITS
    )
    assert terse.digest() == explicit.digest()
    assert terse.normalized()["steps"][0]["retry"] == {
        "max_attempts": 1,
        "backoff_base_ms": 100,
        "backoff_cap_ms": 10_000,
        "jitter_ms": 0,
    }
    other = validate_definition(doc(s("a", max_tokens=8), s("b", depends_on=["a"])), LIMITS)
    assert other.digest() != terse.digest()
    assert terse.order == ("a", "b")


REFUSED = [
    ("ORCH-0300", {**doc(s("a")), "x": 1}, "x"),
    ("ORCH-0300", {"name": "d", "version": "1"}, "steps"),
    ("ORCH-0301", {**doc(s("a")), "version": ""}, "version"),
    ("ORCH-0301", {**doc(s("a")), "name": ".hidden"}, "name"),
    ("ORCH-0302", doc(s("a"), inputs={"1x": {"type": "string"}}), "inputs.1x"),
    ("ORCH-0302", doc(s("a"), inputs={"x": {"type": "string", "min": 1}}), "inputs.x.min"),
    ("ORCH-0302", doc(s("a"), inputs={"x": {"type": "string", "required": 0}}),
     "inputs.x.required"),
    ("ORCH-0303", doc(s("a", prompt="")), "steps[0].prompt"),
    ("ORCH-0303", doc(s("a-b")), "steps[0].id"),
    ("ORCH-0303", doc(s("a", params={"seed": -1})), "steps[0].params.seed"),
    ("ORCH-0304", doc(s("a", retry={"jitter_ms": 60_001})), "steps[0].retry.jitter_ms"),
    ("ORCH-0305", doc(s("a", depends_on=["a", "a"])), "steps[0].depends_on[0]"),
    ("ORCH-0305", doc(s("a"), s("b", depends_on=["a", "a"])), "steps[1].depends_on[1]"),
    ("ORCH-0305", doc(s("a", depends_on=["b"]), s("b", depends_on=["a"])), "steps[0].depends_on"),
    ("ORCH-0306", doc(s("a", "{{ inputs.x | upper }}"), inputs={"x": {"type": "string"}}),
     "steps[0].prompt"),
    ("ORCH-0306", doc(s("a", "{{ steps.a.text }}")), "steps[0].prompt"),
    ("ORCH-0306", doc(s("a", "{{}}")), "steps[0].prompt"),
    ("ORCH-0307", doc(s("a", "{{ inputs.x }}")), "steps[0].prompt"),
    ("ORCH-0307", doc(s("a"), s("b", depends_on=["a"]), s("c", "{{ steps.a.output }}",
                                                          depends_on=["b"])), "steps[2].prompt"),
    ("ORCH-0309", doc(*[s(f"s{i}") for i in range(6)]), "steps"),
]  # fmt: skip


@pytest.mark.req("ORCH-0300", "ORCH-0301", "ORCH-0302", "ORCH-0303", "ORCH-0304", "ORCH-0305")
@pytest.mark.req("ORCH-0306", "ORCH-0307", "ORCH-0308", "ORCH-0309")
@pytest.mark.parametrize(("req", "document", "path"), REFUSED)
def test_a_broken_definition_names_its_field(req: str, document: Any, path: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        validate_definition(document, LIMITS)
    assert refused.value.path == path, f"{req}: {refused.value}"
    assert str(refused.value).startswith(f"{path}: ")


@pytest.mark.req("ORCH-0305")
def test_a_cycle_is_named_by_its_first_step_and_a_long_chain_is_fine() -> None:
    chain = [s("s0")] + [s(f"s{i}", depends_on=[f"s{i - 1}"]) for i in range(1, 2000)]
    assert len(validate_definition(doc(*chain), DefinitionLimits(max_steps=2000)).order) == 2000
    looped = [*chain[:-1], s("s1999", depends_on=["s1998"])]
    looped[0] = s("s0", depends_on=["s1999"])
    with pytest.raises(DefinitionError) as refused:
        validate_definition(doc(*looped), DefinitionLimits(max_steps=2000))
    assert refused.value.path == "steps[0].depends_on"
    assert refused.value.problem.startswith("cycle s0 -> s1999 -> s1998")


@pytest.mark.req("ORCH-0308", "ORCH-0309")
def test_size_and_depth_are_bounded_before_anything_reads_the_document() -> None:
    big = json.dumps(doc(s("a", "x" * 5000))).encode()
    with pytest.raises(DefinitionError) as too_big:
        parse_definition(big, LIMITS)
    assert too_big.value.path == "(document)"
    nested = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(DefinitionError) as too_deep:
        parse_definition(nested, DefinitionLimits(max_bytes=1_000_000))
    assert too_deep.value.path == "(document)"
    assert "16 levels" in too_deep.value.problem
    deep: Any = 1
    for _ in range(20):
        deep = {"k": deep}
    with pytest.raises(DefinitionError) as named:
        validate_definition(doc(s("a", params=deep)), LIMITS)
    assert named.value.path.startswith("steps[0].params.k.k")
    with pytest.raises(MalformedDocument):
        parse_definition(b'{"name": ', LIMITS)


@pytest.mark.req("ORCH-0306", "ORCH-0311")
def test_templates_render_in_one_pass() -> None:
    template = parse_template("a {{inputs.x}} b {{ \tsteps.one.output }} c }} d")
    assert template.inputs == ["x"] and template.steps == ["one"]
    rendered = template.render({"x": "{{ inputs.x }}"}, {"one": "out"})
    assert rendered == "a {{ inputs.x }} b out c }} d"
    assert parse_template("n={{ inputs.n }}").render({"n": -3}, {}) == "n=-3"
    assert parse_template("{{ inputs.b }}").render({"b": False}, {}) == "false"
    assert parse_template("[{{ inputs.gone }}]").render({}, {}) == "[]"
    for broken in ("{{ inputs.x", "{{ inputs }}", "{{ steps.a }}", "{{ 'x' }}", "{{inputs.1}}"):
        with pytest.raises(TemplateError):
            parse_template(broken)


@pytest.mark.req("ORCH-0310")
def test_a_step_seed_is_the_specified_digest() -> None:
    assert step_seed(7, "outline") == 6775920207763151918
    seeds = {step_seed(seed, step) for seed in range(50) for step in ("a", "b")}
    assert len(seeds) == 100 and all(0 <= x < 2**63 for x in seeds)


@pytest.mark.req("ORCH-0332")
def test_backoff_doubles_up_to_its_cap_plus_jitter() -> None:
    rng = random.Random(0)
    assert [backoff_ms(n, 100, 1000, 0, rng) for n in range(1, 7)] == [
        100,
        200,
        400,
        800,
        1000,
        1000,
    ]
    jittered = [backoff_ms(1, 100, 1000, 50, rng) for _ in range(200)]
    assert min(jittered) >= 100 and max(jittered) <= 150 and len(set(jittered)) > 10
    assert backoff_ms(10_000, 100, 600_000, 0, rng) == 600_000
