"""``orchq trace diff``: what a change did to traceability, as a Markdown PR comment.

Compares two traces (``base`` = target branch, ``head`` = the PR) by
requirement ID. Reported, each as a table, only when non-empty:

* new and removed requirements;
* status regressions and improvements, by :data:`harness.trace.report.GOODNESS`
  (verified best, then suspect, flaky, partly-skipped, xfail, skipped, untested,
  failing worst);
* newly uncovered MUSTs: MUST/MUST NOT requirements untested in head that were
  covered in base, or are new and untested;
* changed texts (the normalised text hash differs).
"""

from __future__ import annotations

from harness.trace.compliance import md_escape
from harness.trace.report import ReqInfo, Trace
from harness.trace.states import GOODNESS, STATES

__all__ = ["render_diff"]

_MUST = ("MUST", "MUST NOT")


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    out = [f"\n### {title} ({len(rows)})\n\n", "| " + " | ".join(header) + " |\n"]
    out.append("|" + "---|" * len(header) + "\n")
    out.extend("| " + " | ".join(row) + " |\n" for row in rows)
    return out


def render_diff(base: Trace, head: Trace) -> str:
    """The Markdown comment; deterministic (rows in ID order)."""
    b = {req.id: (req, state) for req, state, _ in base.rows()}
    h = {req.id: (req, state) for req, state, _ in head.rows()}

    def short(req: ReqInfo) -> str:
        text = req.text if len(req.text) <= 100 else req.text[:99] + "…"
        return md_escape(text)

    new = [[i, r.level, s, short(r)] for i, (r, s) in h.items() if i not in b]
    removed = [[i, r.level, s, short(r)] for i, (r, s) in b.items() if i not in h]
    regressions: list[list[str]] = []
    improvements: list[list[str]] = []
    changed: list[list[str]] = []
    for req_id, (req, state) in h.items():
        if req_id not in b:
            continue
        old, old_state = b[req_id]
        row = [req_id, req.level, f"{old_state} → {state}", short(req)]
        if GOODNESS[state] > GOODNESS[old_state]:
            regressions.append(row)
        elif GOODNESS[state] < GOODNESS[old_state]:
            improvements.append(row)
        if old.sha256 != req.sha256:
            changed.append([req_id, req.level, md_escape(old.text), md_escape(req.text)])
    uncovered = [
        [i, r.level, short(r)]
        for i, (r, s) in h.items()
        if r.level in _MUST and s == "untested" and (i not in b or b[i][1] != "untested")
    ]

    def counts(trace: Trace) -> dict[str, int]:
        result = dict.fromkeys(STATES, 0)
        for _, state, _ in trace.rows():
            result[state] += 1
        return result

    cb, ch = counts(base), counts(head)
    out = ["## Requirement traceability\n\n", "| State | Base | Head | Δ |\n|---|---:|---:|---:|\n"]
    for state in STATES:
        delta = ch[state] - cb[state]
        out.append(f"| {state} | {cb[state]} | {ch[state]} | {delta:+d} |\n")
    body = [
        *_table("Status regressions", ["ID", "Level", "State", "Requirement"], regressions),
        *_table("Newly uncovered MUSTs", ["ID", "Level", "Requirement"], uncovered),
        *_table("New requirements", ["ID", "Level", "State", "Requirement"], new),
        *_table("Removed requirements", ["ID", "Level", "State", "Requirement"], removed),
        *_table("Changed texts", ["ID", "Level", "Before", "After"], changed),
        *_table("Status improvements", ["ID", "Level", "State", "Requirement"], improvements),
    ]
    if not body:
        body = ["\nNo requirement changed its text or state.\n"]
    return "".join(out + body)
