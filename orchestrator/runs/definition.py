"""Parsing and validating a run definition (ORCH-0300..0312): every refusal names its field.

A definition arrives as bytes (a request body, a file of ``definitions_dir``)
or as a decoded value. :func:`parse_definition` bounds its size and nesting
before anything else reads it; :func:`validate_definition` checks its shape
against :class:`~orchestrator.schemas.DefinitionDocument`, then what a schema
cannot say: unique step ids, known and acyclic dependencies, templates that name
only declared inputs and direct dependencies. The first problem found is raised
as :class:`DefinitionError` with the path of the offending field
(``steps[2].depends_on[0]``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from orchestrator.runs.templates import InputRef, Template, TemplateError, parse_template
from orchestrator.schemas import DefinitionDocument, StepDeclaration

MAX_DEFINITION_DEPTH = 16
"""How deeply a definition document may nest (ORCH-0309); a valid one needs 5 levels."""
PROMPT_ONLY_KEYS = ("prompt", "pool", "max_tokens", "params", "retry", "checkpoint")
"""What a step with ``run`` must not carry (ORCH-0480)."""
DOCUMENT = "(document)"
"""The path of a problem of the document as a whole."""


class DefinitionError(ValueError):
    """A refused definition: ``path`` names the offending field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class MalformedDocument(ValueError):
    """Bytes that are not JSON: ``INVALID_PARAMS`` like any malformed body (ORCH-0002)."""


@dataclass(frozen=True)
class DefinitionLimits:
    max_steps: int = 100
    max_bytes: int = 262_144


@dataclass(frozen=True)
class ParsedDefinition:
    document: DefinitionDocument
    templates: dict[str, Template]
    """Each step's parsed prompt, by step id."""
    order: tuple[str, ...]
    """The step ids in the order the document lists them."""
    child_inputs: dict[str, dict[str, Template]] = field(default_factory=dict)
    """Each step with ``run``: its child's input templates, by input name (ORCH-0480)."""

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def version(self) -> str:
        return self.document.version

    def normalized(self) -> dict[str, Any]:
        """The document with every default filled in: what two registrations compare.

        A step without a checkpoint and failing as before, and a step with a prompt, are
        stored without the keys they do not use, so a definition registered before
        checkpoints and child runs existed keeps its digest (ORCH-0313)."""
        document = self.document.model_dump(mode="json", by_alias=True)
        for step in document["steps"]:
            if step.get("checkpoint") is None:
                step.pop("checkpoint", None)
            if step.get("on_failure") == "fail":
                step.pop("on_failure", None)
            if step.get("run") is None:
                step.pop("run", None)
                step.pop("for_each", None)
            else:
                for unused in PROMPT_ONLY_KEYS:
                    step.pop(unused, None)
        return document

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.normalized()).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_definition(raw: bytes, limits: DefinitionLimits) -> ParsedDefinition:
    """Decode and validate a definition document of ``raw`` bytes (JSON)."""
    if len(raw) > limits.max_bytes:
        raise DefinitionError(
            DOCUMENT, f"{len(raw)} bytes is over the limit of {limits.max_bytes} bytes"
        )
    try:
        data = json.loads(raw)
    except RecursionError:
        raise DefinitionError(DOCUMENT, _too_deep()) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDocument(f"malformed JSON: {exc}") from None
    return validate_definition(data, limits)


def validate_definition(data: Any, limits: DefinitionLimits) -> ParsedDefinition:
    """Validate a decoded definition document; the first problem raises :class:`DefinitionError`."""
    deepest = _deepest_path(data)
    if deepest is not None:
        raise DefinitionError(deepest, _too_deep())
    if not isinstance(data, dict):
        raise DefinitionError(DOCUMENT, "a definition must be a JSON object")
    steps = data.get("steps")
    if isinstance(steps, list) and len(steps) > limits.max_steps:
        raise DefinitionError(
            "steps", f"{len(steps)} steps is over the limit of {limits.max_steps}"
        )
    try:
        document = DefinitionDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DefinitionError(_path(first["loc"]), _problem(first)) from None
    order = tuple(step.id for step in document.steps)
    index = _step_index(document)
    _check_dependencies(document, index)
    _check_acyclic(document, index)
    _check_checkpoints(document)
    _check_step_kinds(document)
    templates = _check_templates(document)
    child_inputs = _check_child_templates(document)
    return ParsedDefinition(document, templates, order, child_inputs)


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEFINITION_DEPTH} levels"


def _deepest_path(data: Any) -> str | None:
    """The path of the first value nested deeper than the limit, without recursion."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEFINITION_DEPTH:
            return path or DOCUMENT
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            child = f"{path}[{key}]" if isinstance(key, int) else _join(path, str(key))
            stack.append((item, child, depth + 1))
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("[key]") or part.startswith("function-"):
            continue
        else:
            path = _join(path, part)
    return path or DOCUMENT


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return str(error["msg"]).removeprefix("Value error, ")


def _step_index(document: DefinitionDocument) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, step in enumerate(document.steps):
        if step.id in index:
            raise DefinitionError(f"steps[{position}].id", f"duplicate step id {step.id!r}")
        index[step.id] = position
    return index


def _check_dependencies(document: DefinitionDocument, index: dict[str, int]) -> None:
    for position, step in enumerate(document.steps):
        seen: set[str] = set()
        for number, dependency in enumerate(step.depends_on):
            where = f"steps[{position}].depends_on[{number}]"
            if dependency == step.id:
                raise DefinitionError(where, f"step {step.id!r} depends on itself")
            if dependency not in index:
                raise DefinitionError(where, f"unknown step {dependency!r}")
            if dependency in seen:
                raise DefinitionError(where, f"step {dependency!r} is listed twice")
            seen.add(dependency)


def _check_acyclic(document: DefinitionDocument, index: dict[str, int]) -> None:
    """Refuse a cycle, naming the ``depends_on`` of its first step in document order."""
    done: set[str] = set()
    for root in document.steps:
        if root.id in done:
            continue
        on_path: list[str] = [root.id]
        iterators = [iter(root.depends_on)]
        while iterators:
            dependency = next(iterators[-1], None)
            if dependency is None:
                iterators.pop()
                done.add(on_path.pop())
                continue
            if dependency in done:
                continue
            if dependency in on_path:
                cycle = [*on_path[on_path.index(dependency) :], dependency]
                first = min(cycle[:-1], key=index.__getitem__)
                raise DefinitionError(
                    f"steps[{index[first]}].depends_on", "cycle " + " -> ".join(cycle)
                )
            on_path.append(dependency)
            iterators.append(iter(document.steps[index[dependency]].depends_on))


def _check_checkpoints(document: DefinitionDocument) -> None:
    """Decisions without repeats, and ``retry`` only after the step ran (ORCH-0360)."""
    for position, step in enumerate(document.steps):
        if step.checkpoint is None:
            continue
        seen: set[str] = set()
        for number, decision in enumerate(step.checkpoint.allowed()):
            where = f"steps[{position}].checkpoint.decisions[{number}]"
            if decision in seen:
                raise DefinitionError(where, f"decision {decision!r} is listed twice")
            if decision == "retry" and step.checkpoint.when == "before":
                raise DefinitionError(
                    where, "'retry' needs an output to retry: only an 'after' checkpoint allows it"
                )
            seen.add(decision)


def _check_step_kinds(document: DefinitionDocument) -> None:
    """A prompt or a child run, never both; a fan-out over a ``list`` input (ORCH-0480..0483)."""
    for position, step in enumerate(document.steps):
        where = f"steps[{position}]"
        if step.run is None:
            if step.prompt is None:
                raise DefinitionError(f"{where}.prompt", "required key is missing")
            if step.for_each is not None:
                raise DefinitionError(f"{where}.for_each", "needs 'run': only a child run fans out")
            continue
        for key in PROMPT_ONLY_KEYS:
            if key in step.model_fields_set:
                raise DefinitionError(f"{where}.{key}", "a step with 'run' cannot carry it")
        if step.for_each is None:
            continue
        items = f"{where}.for_each.items"
        try:
            template = parse_template(step.for_each.items)
        except TemplateError as exc:
            raise DefinitionError(items, str(exc)) from None
        parts = template.parts
        if len(parts) != 1 or not isinstance(parts[0], InputRef):
            raise DefinitionError(items, "must be exactly one reference '{{ inputs.NAME }}'")
        declared = document.inputs.get(parts[0].name)
        if declared is None or declared.type != "list":
            raise DefinitionError(
                items, f"names input {parts[0].name!r}, which is not a declared 'list' input"
            )


def _check_reference_scope(
    document: DefinitionDocument, step: StepDeclaration, template: Template, where: str
) -> None:
    """Only declared inputs and the step's own dependencies (ORCH-0307)."""
    for name in template.inputs:
        if name not in document.inputs:
            raise DefinitionError(where, f"names input {name!r}, which is not declared")
    for step_id in template.steps:
        if step_id not in step.depends_on:
            raise DefinitionError(
                where, f"names the output of step {step_id!r}, which is not in depends_on"
            )


def _parse(text: str, where: str) -> Template:
    try:
        return parse_template(text)
    except TemplateError as exc:
        raise DefinitionError(where, str(exc)) from None


def _check_templates(document: DefinitionDocument) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    for position, step in enumerate(document.steps):
        if step.prompt is None:
            continue
        where = f"steps[{position}].prompt"
        template = _parse(step.prompt, where)
        _check_reference_scope(document, step, template, where)
        templates[step.id] = template
    return templates


def _check_child_templates(document: DefinitionDocument) -> dict[str, dict[str, Template]]:
    """The templates of each child run's inputs, under the rules of prompts (ORCH-0480)."""
    out: dict[str, dict[str, Template]] = {}
    for position, step in enumerate(document.steps):
        if step.run is None:
            continue
        templates: dict[str, Template] = {}
        for name, text in step.run.inputs.items():
            where = f"steps[{position}].run.inputs.{name}"
            template = _parse(text, where)
            _check_reference_scope(document, step, template, where)
            templates[name] = template
        out[step.id] = templates
    return out
