"""Run definitions: registering, looking up, and the ``definitions_dir`` loaded at start.

A definition is immutable once registered: the same ``name@version`` with
another document is refused, with the same one it is the stored one (ORCH-0313).
A definition's child runs are checked against what is registered when it is
registered (ORCH-0483, ORCH-0484), so a folder at start registers children
first, and refuses to start naming the file, the step and the missing
``name@version`` when a child is registered nowhere (ORCH-0315).
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import load_definitions
from orchestrator.errors import ApiError
from orchestrator.runs import (
    DefinitionError,
    DefinitionLimits,
    ParsedDefinition,
    validate_definition,
)
from orchestrator.runs.children import Lookup, check_children, registration_order
from orchestrator.runtime.context import RuntimeContext
from orchestrator.runtime.run_views import definition_summary, definition_view
from orchestrator.schemas import Definition, DefinitionList
from orchestrator.store import DefinitionRow, Store
from orchestrator.vocabulary import ErrorKind


class Definitions:
    """The registered definitions, parsed once and kept."""

    def __init__(self, context: RuntimeContext) -> None:
        self._context = context
        self._parsed: dict[tuple[str, str], ParsedDefinition] = {}

    def load_folder(self) -> None:
        """Register the ``definitions_dir`` of the config, each child before its parents;
        a child registered nowhere raises :class:`~orchestrator.config.ConfigError`."""
        for parsed in registration_order(load_definitions(self._context.config, self.lookup)):
            self.register(parsed)

    def register(self, parsed: ParsedDefinition) -> tuple[Definition, bool]:
        """Register ``parsed``; ``(definition, created)``. The same name@version with another
        document is 409 ``CONFLICT``; with the same document, the stored one (ORCH-0313)."""
        store = self._context.store
        digest = parsed.digest()
        existing = store.get_definition(parsed.name, parsed.version)
        if existing is not None:
            if existing.digest != digest:
                raise ApiError(
                    ErrorKind.CONFLICT,
                    f"definition {parsed.name}@{parsed.version} is already registered with "
                    "another document; versions are immutable",
                    details={"digest": existing.digest},
                )
            return definition_view(existing), False
        try:
            check_children(parsed, self.lookup)
        except DefinitionError as exc:
            raise definition_error(exc) from None
        row = DefinitionRow(
            parsed.name, parsed.version, digest, parsed.normalized(), self._context.clock.now_ms()
        )
        with store.transaction():
            store.insert_definition(row)
        self._parsed[(row.name, row.version)] = parsed
        return definition_view(row), True

    def definition(self, name: str, version: str) -> Definition:
        row = self._context.store.get_definition(name, version)
        if row is None:
            raise ApiError(ErrorKind.NOT_FOUND, f"definition {name}@{version} not found")
        return definition_view(row)

    def definitions(self) -> DefinitionList:
        return DefinitionList(
            definitions=[definition_summary(r) for r in self._context.store.definitions()]
        )

    def lookup(self, name: str, version: str) -> ParsedDefinition | None:
        key = (name, version)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = registered_in(self._context.store)(name, version)
            if parsed is not None:
                self._parsed[key] = parsed
        return parsed


def parse_stored(document: dict[str, Any]) -> ParsedDefinition:
    """A stored definition document, parsed again."""
    # Stored documents were valid when registered; a limit lowered since does not
    # make a registered definition unusable.
    return validate_definition(document, DefinitionLimits(10**9, 10**12))


def registered_in(store: Store) -> Lookup:
    """The definitions registered in ``store``, looked up by name and version."""

    def lookup(name: str, version: str) -> ParsedDefinition | None:
        row = store.get_definition(name, version)
        return parse_stored(row.document) if row is not None else None

    return lookup


def definition_error(exc: DefinitionError) -> ApiError:
    """400 ``INVALID_DEFINITION`` naming the field (ORCH-0308)."""
    return ApiError(ErrorKind.INVALID_DEFINITION, str(exc), details={"path": exc.path})
