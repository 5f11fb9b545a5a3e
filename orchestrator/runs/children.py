"""Sub-orchestrations (ORCH-0480..0494): what a step with ``run`` needs, as pure functions.

:func:`check_children` checks a definition's child runs against the definitions
registered when it is registered (the child exists, takes the inputs given,
nesting stays shallow); the rest decides, from the states of a step's children
alone, which child to create next and how the step ends, so a restart derives
the same answer from the store. Child seeds and the aggregated output are spelled
out in the spec so that every implementation gives the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.runs.definition import DefinitionError, ParsedDefinition
from orchestrator.runs.seeds import SEED_MASK
from orchestrator.runs.templates import parse_template
from orchestrator.schemas import StepDeclaration
from orchestrator.vocabulary import RUN_TERMINAL_STATES, RunState

MAX_RUN_DEPTH = 4
"""A definition runs children at most this many levels deep, itself included (ORCH-0484)."""

Lookup = Callable[[str, str], ParsedDefinition | None]
"""The registered definition of a name and a version, or ``None``."""


def check_children(parsed: ParsedDefinition, lookup: Lookup, *, unknown_ok: bool = False) -> None:
    """Refuse a child that is not registered, inputs it does not take, or too deep a
    nesting (ORCH-0483, ORCH-0484); the first problem raises :class:`DefinitionError`.
    With ``unknown_ok``, a child ``lookup`` does not know is passed over (a folder of
    definitions checked before the database it registers into is open)."""
    for position, step in enumerate(parsed.document.steps):
        if step.run is None:
            continue
        where = f"steps[{position}].run"
        child = lookup(step.run.definition, step.run.version)
        if child is None and unknown_ok:
            continue
        if child is None:
            raise DefinitionError(
                f"{where}.version",
                f"step {step.id!r} runs {step.run.definition}@{step.run.version}, "
                "which is not registered",
            )
        _check_child_inputs(step, child, where, f"steps[{position}].for_each.as")
        if 1 + depth(child, lookup) > MAX_RUN_DEPTH:
            raise DefinitionError(
                where, f"runs child runs more than {MAX_RUN_DEPTH} levels deep, itself included"
            )


def _check_child_inputs(
    step: StepDeclaration, child: ParsedDefinition, where: str, as_where: str
) -> None:
    assert step.run is not None
    declared = child.document.inputs
    for name in step.run.inputs:
        kind = declared[name].type if name in declared else None
        if kind != "string":
            raise DefinitionError(
                f"{where}.inputs.{name}",
                f"{child.name}@{child.version} does not declare {name!r} as a string input",
            )
    given = set(step.run.inputs)
    if step.for_each is not None:
        item = step.for_each.as_
        if item not in declared or declared[item].type != "string":
            raise DefinitionError(
                as_where,
                f"{child.name}@{child.version} does not declare {item!r} as a string input",
            )
        if item in given:
            raise DefinitionError(as_where, f"{item!r} is also given by run.inputs")
        given.add(item)
    for name, declaration in declared.items():
        if declaration.required and name not in given:
            raise DefinitionError(
                f"{where}.inputs", f"{child.name}@{child.version} requires input {name!r}"
            )


def depth(parsed: ParsedDefinition, lookup: Lookup) -> int:
    """1 without child runs, else 1 plus the deepest child's depth (ORCH-0484)."""
    deepest = 0
    for step in parsed.document.steps:
        if step.run is not None:
            child = lookup(step.run.definition, step.run.version)
            if child is not None:
                deepest = max(deepest, depth(child, lookup))
    return 1 + deepest


def unknown_pool(
    parsed: ParsedDefinition, lookup: Lookup, pools: Container[str], path: str = ""
) -> str | None:
    """The message of the first step whose ``pool`` is not in ``pools``, ``None`` when none:
    ``parsed``'s own steps first (``steps[i].pool``, ORCH-0318), then, in step order, those
    of each definition its child runs reach, named by their path (ORCH-0495)."""
    for position, step in enumerate(parsed.document.steps):
        if step.run is None and step.pool not in pools:
            where = f"{path} steps.{step.id}.pool" if path else f"steps[{position}].pool"
            return f"pool {step.pool!r} of step {step.id!r} ({where}) not found"
    for step in parsed.document.steps:
        if step.run is None:
            continue
        child = lookup(step.run.definition, step.run.version)
        if child is None:  # registered before its parent (ORCH-0483)
            continue
        reached = f"steps.{step.id}.run -> {child.name}@{child.version}"
        found = unknown_pool(child, lookup, pools, f"{path} {reached}" if path else reached)
        if found is not None:
            return found
    return None


def registration_order(definitions: Sequence[ParsedDefinition]) -> list[ParsedDefinition]:
    """``definitions`` with each child before the definitions that run it, otherwise in the
    order given, so a folder of definitions registers whatever its file names."""
    by_key = {(p.name, p.version): p for p in definitions}
    ordered: list[ParsedDefinition] = []
    placed: set[tuple[str, str]] = set()

    def place(parsed: ParsedDefinition, path: tuple[tuple[str, str], ...]) -> None:
        key = (parsed.name, parsed.version)
        if key in placed or key in path:
            return
        for step in parsed.document.steps:
            if step.run is not None:
                child = by_key.get((step.run.definition, step.run.version))
                if child is not None:
                    place(child, (*path, key))
        placed.add(key)
        ordered.append(parsed)

    for parsed in definitions:
        place(parsed, ())
    return ordered


def child_seed(step_seed: int, item: int, fan_out: bool) -> int:
    """The step's seed for its only child; for item ``i`` of a fan-out, the first 8 bytes of
    SHA-256 of ``"<step seed>/<i>"`` (UTF-8), big-endian, highest bit cleared (ORCH-0485)."""
    if not fan_out:
        return step_seed
    digest = hashlib.sha256(f"{step_seed}/{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & SEED_MASK


def aggregate(outputs: list[str], fan_out: bool) -> str:
    """The step's output: its only child's, or a compact JSON array in item order (ORCH-0490)."""
    if not fan_out:
        return outputs[0]
    return json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class FanOutState:
    """What a step with ``run`` does next, derived from its children's states."""

    create: list[int]
    """The items whose children to create now, lowest first."""
    outcome: RunState | None
    """``completed`` or ``failed`` once the step ends, else ``None``."""
    failed_item: int | None
    """The child whose error the step fails with."""


def next_move(
    items: int, states: dict[int, RunState], max_parallel: int, fail_fast: bool
) -> FanOutState:
    """Decide a step's next move from the states of the children created so far (by item):
    at most ``max_parallel`` running, the lowest items first (ORCH-0487); done when all
    completed, failed at the first child that did not complete under ``fail_fast`` or once
    all ended (ORCH-0490, ORCH-0491)."""
    failed = sorted(i for i, s in states.items() if s in RUN_TERMINAL_STATES and s != "completed")
    if failed and fail_fast:
        return FanOutState([], "failed", failed[0])
    running = sum(1 for s in states.values() if s not in RUN_TERMINAL_STATES)
    missing = [i for i in range(items) if i not in states]
    create = missing[: max(0, max_parallel - running)]
    if running or create:
        return FanOutState(create, None, None)
    if failed:
        return FanOutState([], "failed", failed[0])
    return FanOutState([], "completed", None)


def fan_out_items(step: StepDeclaration, inputs: dict[str, Any]) -> list[str]:
    """The items a step runs a child for: one (the empty text) without ``for_each``."""
    if step.for_each is None:
        return [""]
    (name,) = parse_template(step.for_each.items).inputs  # one reference (ORCH-0483)
    value = inputs.get(name, [])
    return [str(item) for item in value] if isinstance(value, list) else []
