"""Prompt templates of run steps: ``{{ inputs.NAME }}`` and ``{{ steps.ID.output }}`` (ORCH-0306).

Every ``{{`` opens a reference that closes at the next ``}}``; inside, blanks
(spaces and tabs) around the reference are ignored. There is nothing else: no
expressions, filters or escapes, so rendering can never execute anything.
Rendering is one pass: a substituted value is never scanned again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REFERENCE = re.compile(
    r"^[ \t]*(?:inputs\.(?P<input>[A-Za-z_][A-Za-z0-9_]*)"
    r"|steps\.(?P<step>[A-Za-z_][A-Za-z0-9_]*)\.output)[ \t]*$"
)


class TemplateError(ValueError):
    """A template that is not made of text and well-formed references."""


@dataclass(frozen=True)
class InputRef:
    name: str


@dataclass(frozen=True)
class StepRef:
    step_id: str


Part = str | InputRef | StepRef


@dataclass(frozen=True)
class Template:
    parts: tuple[Part, ...]

    @property
    def inputs(self) -> list[str]:
        return [part.name for part in self.parts if isinstance(part, InputRef)]

    @property
    def steps(self) -> list[str]:
        return [part.step_id for part in self.parts if isinstance(part, StepRef)]

    def render(self, inputs: dict[str, Any], outputs: dict[str, str]) -> str:
        """The prompt: each reference replaced by its value, an optional input the run
        does not give by the empty text (ORCH-0311)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, InputRef):
                out.append(render_input(inputs.get(part.name, "")))
            else:
                out.append(outputs[part.step_id])
        return "".join(out)


def render_input(value: Any) -> str:
    """A string as it is, an integer in decimal digits, a boolean as ``true``/``false``,
    a list as its items joined by line feeds (ORCH-0482)."""
    if isinstance(value, list):
        return "\n".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def parse_template(text: str) -> Template:
    parts: list[Part] = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            if position < len(text):
                parts.append(text[position:])
            return Template(tuple(parts))
        if start > position:
            parts.append(text[position:start])
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"'{{{{' at character {start} is never closed by '}}}}'")
        inner = text[start + 2 : end]
        match = _REFERENCE.match(inner)
        if match is None:
            raise TemplateError(
                f"'{{{{{inner[:60]}}}}}' at character {start} is not "
                "'{{ inputs.NAME }}' or '{{ steps.ID.output }}'"
            )
        if match["input"] is not None:
            parts.append(InputRef(match["input"]))
        else:
            parts.append(StepRef(match["step"]))
        position = end + 2
