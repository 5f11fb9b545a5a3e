"""A run's inputs checked against its definition's declarations (ORCH-0319, ORCH-0482).

Pure: the first problem raises :class:`InputError` naming the input's path
(``inputs.topic``); the runtime answers it as 400 ``INVALID_PARAMS``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.schemas import DefinitionDocument

MAX_STRING_INPUT = 32_768
"""A string input fits in a task prompt (ORCH-0038)."""
MAX_LIST_ITEMS = 256
"""A ``list`` input fans out to at most this many child runs (ORCH-0482)."""


class InputError(ValueError):
    """An input the definition refuses: ``path`` is ``inputs.NAME``."""

    def __init__(self, name: str, problem: str) -> None:
        self.path = f"inputs.{name}"
        super().__init__(f"{self.path}: {problem}")


def check_inputs(document: DefinitionDocument, given: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the run keeps them (an integer given as ``2.0`` becomes ``2``)."""
    checked: dict[str, Any] = {}
    for name, value in given.items():
        declared = document.inputs.get(name)
        if declared is None:
            raise InputError(name, "is not declared by the definition")
        if declared.type == "string":
            ok = isinstance(value, str) and len(value) <= MAX_STRING_INPUT
        elif declared.type == "boolean":
            ok = isinstance(value, bool)
        elif declared.type == "list":
            ok = (
                isinstance(value, list)
                and len(value) <= MAX_LIST_ITEMS
                and all(isinstance(i, str) and len(i) <= MAX_STRING_INPUT for i in value)
            )
        else:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise InputError(name, f"must be of type {declared.type}")
        checked[name] = value
    for name, declared in document.inputs.items():
        if declared.required and name not in checked:
            raise InputError(name, "is required")
    return checked
