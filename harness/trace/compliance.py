"""``COMPLIANCE.md``: the traceability report as GitHub-flavoured Markdown.

Summary counts by state and level first, then one table per spec section: each
requirement links to its anchor in the spec, shows the kinds of evidence that
verified it (and those whose tests did not pass), and links each test that did
not pass to its file and line. Every piece of text from the spec or a test ID is
escaped, so a requirement mentioning ``<script>`` or ``a | b`` renders as text and
never breaks the table.
"""

from __future__ import annotations

import re

from harness.trace.index import LEVELS
from harness.trace.report import CaseInfo, Trace, evidence_states
from harness.trace.states import STATES

__all__ = ["case_link", "evidence_text", "md_escape", "render_compliance"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell: specials backslashed, ``&`` and newlines neutral."""
    text = " ".join(text.split()).replace("&", "&amp;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _url(text: str) -> str:
    """A link target: spaces and the characters Markdown would read as syntax escaped."""
    return text.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def case_link(link_base: str, case: CaseInfo | None) -> str | None:
    """Where a test is written, as a link (``path#L12``), or ``None`` when unknown."""
    if case is None or case.path is None:
        return None
    anchor = f"#L{case.line}" if case.line is not None else ""
    return f"{link_base}{case.path}{anchor}"


def evidence_text(evidence: dict[str, str]) -> str:
    """``cdc, contract, unit (failing)``: verified kinds plain, the others with their state."""
    parts = [
        kind if state == "verified" else f"{kind} ({state})" for kind, state in evidence.items()
    ]
    return ", ".join(parts) or "-"


def _requirement_cell(trace: Trace, link_base: str, req_id: str) -> str:
    if trace.spec is None:
        return f'<a id="{req_id}"></a>{req_id}'
    return f'<a id="{req_id}"></a>[{req_id}]({_url(link_base + trace.spec)}#{req_id})'


def render_compliance(trace: Trace, link_base: str = "") -> str:
    """Deterministic Markdown for ``trace`` (same trace, same bytes); links to the spec and
    the test files are relative to ``link_base``, the path from the report to the rootdir."""
    rows = trace.rows()
    counts = {state: dict.fromkeys(LEVELS, 0) for state in STATES}
    for req, state, _ in rows:
        counts[state][req.level] += 1
    out = [
        f"# {md_escape(trace.title)} compliance\n\n",
        f"Requirements index: `{trace.index}`; {len(rows)} requirement(s), "
        f"{len(trace.tests)} citing test case(s).",
    ]
    if trace.lock:
        out.append(f" Acceptance lock: `{trace.lock}`.")
    out.append("\n\n## Summary\n\n")
    out.append("| State | " + " | ".join(LEVELS) + " | Total |\n")
    out.append("|---|" + "---:|" * (len(LEVELS) + 1) + "\n")
    for state in STATES:
        per = counts[state]
        out.append(
            f"| {state} | "
            + " | ".join(str(per[lv]) for lv in LEVELS)
            + f" | {sum(per.values())} |\n"
        )
    totals = [sum(counts[s][lv] for s in STATES) for lv in LEVELS]
    out.append("| **total** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |\n")
    sections: dict[str, list[str]] = {}
    for req, state, tests in rows:
        failing = [n for n, o in tests if o != "passed"]
        shown = []
        for nodeid in failing[:3]:
            target = case_link(link_base, trace.cases.get(nodeid))
            shown.append(f"[{md_escape(nodeid)}]({_url(target)})" if target else md_escape(nodeid))
        test_cell = f"{len(tests)}" + (
            f" ({len(failing)} not passed: "
            + ", ".join(shown)
            + (", …" if len(failing) > 3 else "")
            + ")"
            if failing
            else ""
        )
        ops = ", ".join(md_escape(o) for o in req.operations) or "-"
        evidence = evidence_text(evidence_states(tests, trace.cases))
        sections.setdefault(req.section, []).append(
            f"| {_requirement_cell(trace, link_base, req.id)} | {req.level} | {state} | "
            f"{md_escape(req.text)} | {md_escape(evidence)} | {test_cell} | {ops} |\n"
        )
    for section, lines in sections.items():
        out.append(f"\n## {md_escape(section) or '(no section)'}\n\n")
        out.append("| ID | Level | State | Requirement | Evidence | Tests | Operations |\n")
        out.append("|---|---|---|---|---|---:|---|\n")
        out.extend(lines)
    return "".join(out)
