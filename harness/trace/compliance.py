"""``COMPLIANCE.md``: the traceability report as GitHub-flavoured Markdown.

Summary counts by state and level first, then one table per spec section.
Every piece of text from the spec or a test ID is escaped, so a requirement
mentioning ``<script>`` or ``a | b`` renders as text and never breaks the table.
"""

from __future__ import annotations

import re

from harness.trace.index import LEVELS
from harness.trace.report import STATES, Trace

__all__ = ["md_escape", "render_compliance"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell: specials backslashed, ``&`` and newlines neutral."""
    text = " ".join(text.split()).replace("&", "&amp;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def render_compliance(trace: Trace) -> str:
    """Deterministic Markdown for ``trace`` (same trace, same bytes)."""
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
        test_cell = f"{len(tests)}" + (
            f" ({len(failing)} not passed: "
            + ", ".join(md_escape(n) for n in failing[:3])
            + (", …" if len(failing) > 3 else "")
            + ")"
            if failing
            else ""
        )
        ops = ", ".join(md_escape(o) for o in req.operations) or "-"
        sections.setdefault(req.section, []).append(
            f'| <a id="{req.id}"></a>{req.id} | {req.level} | {state} | '
            f"{md_escape(req.text)} | {test_cell} | {ops} |\n"
        )
    for section, lines in sections.items():
        out.append(f"\n## {md_escape(section) or '(no section)'}\n\n")
        out.append("| ID | Level | State | Requirement | Tests | Operations |\n")
        out.append("|---|---|---|---|---:|---|\n")
        out.extend(lines)
    return "".join(out)
