"""The Definition-of-Done checklist of one requirement, filled in from a trace.

The test plan's checklist asks, per requirement, for contracts (the OpenAPI
document and wire-contract tests), consumer-driven contracts (Pact), provider
verification, properties, determinism, an end-to-end run, observability and
compliance (the index maps the requirement to tests and code). Each item is
answered by the kinds of evidence that prove it (:mod:`harness.trace.evidence`):
``[x]`` when every citing test of those kinds passed, ``[!]`` when one did not
(its tests are listed), ``[ ]`` when no test of those kinds cites it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.trace.report import Trace, evidence_states

__all__ = ["ITEMS", "DodItem", "checklist"]


@dataclass(frozen=True)
class DodItem:
    """One line of the checklist and the kinds of evidence that tick it."""

    name: str
    what: str
    kinds: tuple[str, ...]


ITEMS: tuple[DodItem, ...] = (
    DodItem("Contracts", "OpenAPI operations and wire-contract tests", ("contract",)),
    DodItem("CDC", "Pact interactions recorded by the consumer", ("cdc",)),
    DodItem("Provider", "provider verification and fuzzing against the document", ("cdc", "fuzz")),
    DodItem("Properties", "property tests", ("property",)),
    DodItem("Determinism", "seeded byte-exact runs and snapshots", ("determinism",)),
    DodItem("E2E", "a real engine end to end", ("e2e",)),
    DodItem("Observability", "metrics prove it", ("metrics",)),
)


def _mark(states: dict[str, str], kinds: tuple[str, ...]) -> str:
    present = [states[kind] for kind in kinds if kind in states]
    if not present:
        return "[ ]"
    return "[x]" if all(state == "verified" for state in present) else "[!]"


def checklist(trace: Trace, req_id: str) -> list[str]:
    """The checklist's lines; ``KeyError`` if the trace has no such requirement."""
    found = [row for row in trace.rows() if row[0].id == req_id]
    if not found:
        raise KeyError(req_id)
    req, state, tests = found[0]
    states = evidence_states(tests, trace.cases)
    lines = [f"{req.id} — {req.text}", f"  {req.level}, {req.section}; state: {state}"]
    for item in ITEMS:
        mark = _mark(states, item.kinds)
        counted = [
            (nodeid, outcome)
            for nodeid, outcome in tests
            if (case := trace.cases.get(nodeid)) is not None and case.evidence in item.kinds
        ]
        passed = sum(1 for _, outcome in counted if outcome == "passed")
        detail = f"{passed} of {len(counted)} test(s) passed" if counted else "no test"
        if item.name == "Contracts":
            operations = ", ".join(req.operations) or "no OpenAPI operation names it"
            detail += f"; {operations}"
        lines.append(f"- {item.name}: {mark} {item.what}: {detail}")
        lines.extend(
            f"    {outcome}: {nodeid}" for nodeid, outcome in counted if outcome != "passed"
        )
    cited = "[x]" if tests and state == "verified" else "[!]" if tests else "[ ]"
    kinds = ", ".join(f"{kind} {s}" for kind, s in states.items()) or "none"
    lines.append(
        f"- Compliance: {cited} {trace.index} maps it to {len(tests)} test(s) "
        f"({kinds}) and {len(req.operations)} operation(s)"
    )
    return lines
