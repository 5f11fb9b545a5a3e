"""Kinds of evidence: what sort of test verified a requirement, and gates that ask for one.

Every citing test has one kind, known from its marker or where it lives:

1. ``@pytest.mark.evidence("cdc")`` names it outright;
2. else a suite marker: ``e2e``, ``fuzz``, ``properties`` (-> ``property``),
   ``determinism``, ``metrics``, ``contract``;
3. else ``integration`` when it lives under an ``integration`` folder or uses a
   fixture that starts a server (:data:`SERVER_FIXTURES`), ``unit`` otherwise.

A requirement's evidence is, per kind, the state its tests of that kind give it
(the rules of :func:`harness.trace.report.requirement_state`). An evidence rule
(``--orch-require-evidence "MUST = contract | property"``) refuses, under the
gate, a requirement of that level without a ``verified`` kind among those named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

__all__ = [
    "KINDS",
    "MARKER",
    "SERVER_FIXTURES",
    "EvidenceRule",
    "EvidenceRuleError",
    "evidence_violations",
    "kind_of",
    "location_of",
    "parse_rules",
]

KINDS: tuple[str, ...] = (
    "contract",
    "cdc",
    "fuzz",
    "property",
    "determinism",
    "e2e",
    "metrics",
    "integration",
    "unit",
)
"""Every kind of evidence, in the order reports list them."""

MARKER = "evidence"
"""``@pytest.mark.evidence(kind)``: a test's kind, where marker and location would not say."""

_SUITE_MARKERS: tuple[tuple[str, str], ...] = (
    ("e2e", "e2e"),
    ("fuzz", "fuzz"),
    ("properties", "property"),
    ("determinism", "determinism"),
    ("metrics", "metrics"),
    ("contract", "contract"),
)
SERVER_FIXTURES = frozenset(
    {"orch_serve", "orch_target", "orch_client", "orch_engine", "serve", "server", "pytester"}
)
"""Fixtures whose test talks to something real it started: integration evidence."""


def kind_of(item: pytest.Item) -> str:
    """The kind of evidence ``item`` gives (rules in the module docstring)."""
    explicit = item.get_closest_marker(MARKER)
    if explicit is not None:
        kind = explicit.args[0] if explicit.args else None
        if kind not in KINDS:
            known = ", ".join(KINDS)
            raise ValueError(
                f"{item.nodeid}: @pytest.mark.{MARKER}({kind!r}): expected one of {known}"
            )
        return str(kind)
    for marker, kind in _SUITE_MARKERS:
        if item.get_closest_marker(marker) is not None:
            return kind
    path = PurePosixPath(item.location[0])
    if "integration" in path.parts or SERVER_FIXTURES.intersection(
        getattr(item, "fixturenames", ())
    ):
        return "integration"
    return "unit"


def location_of(item: pytest.Item) -> tuple[str, int]:
    """Where the test is written: its file (POSIX, relative to the rootdir) and 1-based line."""
    path, line, _ = item.location
    return PurePosixPath(path.replace("\\", "/")).as_posix(), (line or 0) + 1


class EvidenceRuleError(ValueError):
    """A malformed ``--orch-require-evidence`` value (one line)."""


@dataclass(frozen=True)
class EvidenceRule:
    """Requirements of ``level`` (``MUST`` also ``MUST NOT``) must have one of ``kinds`` in
    state ``verified``."""

    level: str
    kinds: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.level} = {' | '.join(self.kinds)}"

    def applies(self, level: str) -> bool:
        """``MUST`` (``SHOULD``) covers ``MUST NOT`` (``SHOULD NOT``) too, as the gate does."""
        return level in (self.level, f"{self.level} NOT")

    def refuses(self, evidence: Mapping[str, str]) -> bool:
        return not any(evidence.get(kind) == "verified" for kind in self.kinds)


_CLAUSE = re.compile(r"^\s*(MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\s*=\s*(.+?)\s*$")


def parse_rules(text: str | None) -> tuple[EvidenceRule, ...]:
    """``"MUST = contract | property; SHOULD = unit"`` (clauses split by ``;`` or lines)."""
    if not text or not text.strip():
        return ()
    rules: list[EvidenceRule] = []
    for clause in re.split(r"[;\n]", text):
        if not clause.strip():
            continue
        found = _CLAUSE.match(clause)
        if found is None:
            raise EvidenceRuleError(
                f"evidence rule {clause.strip()!r}: expected LEVEL = kind | kind "
                "(e.g. MUST = contract | property)"
            )
        kinds = tuple(kind.strip() for kind in found.group(2).split("|"))
        unknown = [kind for kind in kinds if kind not in KINDS]
        if unknown:
            raise EvidenceRuleError(
                f"evidence rule {clause.strip()!r}: unknown kind {unknown[0]!r} "
                f"(known: {', '.join(KINDS)})"
            )
        rules.append(EvidenceRule(found.group(1), kinds))
    return tuple(rules)


def evidence_violations(
    rules: tuple[EvidenceRule, ...], rows: Sequence[tuple[str, str, str, Mapping[str, str]]]
) -> list[str]:
    """One line per requirement a rule refuses; ``rows`` are (id, level, section, evidence)."""
    out: list[str] = []
    for req_id, level, section, evidence in rows:
        for rule in rules:
            if rule.applies(level) and rule.refuses(evidence):
                has = ", ".join(f"{k} {s}" for k, s in evidence.items()) or "no citing test"
                out.append(
                    f"{req_id} ({level}, {section}): no verified {' or '.join(rule.kinds)} "
                    f"evidence (has: {has})"
                )
    return out
