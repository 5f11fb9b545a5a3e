"""The outcome of one ``orchq verify`` run as plain data, and its Markdown form.

:func:`summarise` turns the run's trace, progress and pytest exit code into a
:class:`VerifySummary`; the CLI renders it as rich tables, as JSON
(``--json``) and as Markdown for a CI job summary (``GITHUB_STEP_SUMMARY``),
so the three always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import exitcodes
from harness.trace.states import STATES
from harness.verify.gate import NOT_CLAIMED_STATE, OUTSIDE, REMOTE_UNVERIFIABLE, judge
from harness.verify.progress import SuiteProgress

__all__ = ["LEVELS", "STATE_ORDER", "VERDICTS", "VerifySummary", "summarise"]

LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
STATE_ORDER = (*STATES, REMOTE_UNVERIFIABLE, NOT_CLAIMED_STATE, OUTSIDE)
VERDICTS: dict[int, str] = {
    exitcodes.OK: "conformant",
    exitcodes.TESTS_FAILED: "tests failed",
    exitcodes.USAGE: "the target cannot be verified, or pytest was interrupted",
    3: "pytest internal error",
    4: "pytest usage error",
    5: "no tests were collected",
    exitcodes.TRACE_VIOLATION: "the gate refused the run",
    exitcodes.SPEC_ERROR: "spec or configuration error",
}
"""Every exit code ``orchq verify`` returns, pytest's own included."""
FIRST_LINE_MAX = 160
"""Longest failure line kept; pytest.log has the whole message."""


@dataclass
class VerifySummary:
    exit_code: int
    target: str | None
    gate: str
    serve_cmd: str | None = None
    """The serve command of a harness-managed target (then ``target`` is None)."""
    suites: dict[str, dict[str, int]] = field(default_factory=dict)
    """suite -> {"total", "done", "failed", "skipped"}."""
    states: dict[str, dict[str, int]] = field(default_factory=dict)
    """state (or category) -> level -> count; only states that occur."""
    unverified: list[dict[str, str]] = field(default_factory=list)
    """Gated requirements that are not verified and not failing: id, level, state."""
    failing: list[dict[str, str]] = field(default_factory=list)
    """Failing or flaky requirements: id, level, state, test, first line of the failure."""
    failing_tests: list[dict[str, str]] = field(default_factory=list)
    """Failed tests citing no requirement: test, first line."""
    reports: dict[str, str] = field(default_factory=dict)
    """Report kind -> path, for the files that exist."""
    traced: bool = True
    """False when the run wrote no trace (then only the exit code and the log count)."""

    @property
    def verdict(self) -> str:
        return VERDICTS.get(self.exit_code, f"pytest exit {self.exit_code}")

    def document(self) -> dict[str, Any]:
        """What ``--json`` prints."""
        return {
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "target": self.target,
            "serve_cmd": self.serve_cmd,
            "gate": self.gate,
            "suites": self.suites,
            "requirements_by_state": self.states,
            "unverified": self.unverified,
            "failing": self.failing,
            "failing_tests": self.failing_tests,
            "reports": self.reports,
        }

    def markdown(self) -> str:
        """A job summary: verdict, requirements by state and level, what failed."""
        target = self.target or (
            f"started by {self.serve_cmd}" if self.serve_cmd else "the embedded orchestratord"
        )
        out = [f"## orchq verify: {self.verdict} (exit {self.exit_code})\n\n"]
        out.append(f"Target: `{target}`; gate: `{self.gate}`.\n")
        if self.states:
            out.append("\n| state | " + " | ".join(LEVELS) + " | total |\n")
            out.append("|---|" + "---:|" * (len(LEVELS) + 1) + "\n")
            for state, row in self.states.items():
                cells = " | ".join(str(row.get(level, 0)) for level in LEVELS)
                out.append(f"| {state} | {cells} | {sum(row.values())} |\n")
        if self.failing:
            out.append("\n**Failing requirements**\n\n| requirement | test | failure |\n")
            out.append("|---|---|---|\n")
            for req in self.failing:
                out.append(
                    f"| {req['id']} ({req['level']}) | `{_md_code(req['test'])}` "
                    f"| {_md_cell(req['failure'])} |\n"
                )
        if self.unverified:
            out.append(f"\n**Not verified by a passing test (gate `{self.gate}`)**\n\n")
            for req in self.unverified:
                out.append(f"- {req['id']} ({req['level']}): {req['state']}\n")
        if self.failing_tests:
            out.append("\n**Failing tests (citing no requirement)**\n\n")
            for test in self.failing_tests:
                out.append(f"- `{_md_code(test['test'])}`: {_md_cell(test['failure'])}\n")
        return "".join(out)


def _md_code(text: str) -> str:
    return text.replace("`", "'")


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _first(line: str) -> str:
    return line if len(line) <= FIRST_LINE_MAX else line[: FIRST_LINE_MAX - 1] + "…"


def summarise(
    trace: dict[str, Any] | None,
    progress: SuiteProgress,
    code: int,
    *,
    target: str | None,
    gate: str,
    reports: dict[str, Path],
    serve_cmd: str | None = None,
) -> VerifySummary:
    """The run's summary; the exit code becomes TRACE_VIOLATION when tests passed but the
    gate refused, SPEC_ERROR when a run that passed wrote no trace."""
    summary = VerifySummary(code, target, gate, serve_cmd)
    for suite, total in progress.totals.items():
        summary.suites[suite] = {
            "total": total,
            "done": progress.done[suite],
            "failed": progress.failed[suite],
            "skipped": progress.skipped[suite],
        }
    summary.reports = {kind: str(path) for kind, path in reports.items() if path.exists()}
    summary.failing_tests = [
        {"test": f.nodeid, "failure": _first(f.first_line)} for f in progress.failures.values()
    ]
    if trace is None:
        summary.traced = False
        if code == exitcodes.OK:
            summary.exit_code = exitcodes.SPEC_ERROR
        return summary
    requirements: list[dict[str, Any]] = trace.get("requirements", [])
    judgement = judge(requirements, progress.skip_reasons, gate=gate, live=target is not None)
    if code == exitcodes.OK and judgement.violations:
        summary.exit_code = exitcodes.TRACE_VIOLATION
    by_state: dict[str, dict[str, int]] = {}
    for req in requirements:
        row = by_state.setdefault(judgement.category[req["id"]], {})
        row[req["level"]] = row.get(req["level"], 0) + 1
    summary.states = {
        state: by_state[state]
        for state in sorted(by_state, key=lambda s: (*STATE_ORDER, s).index(s))
    }
    failing = [r for r in requirements if r["state"] in ("failing", "flaky")]
    summary.unverified = [
        {"id": r["id"], "level": r["level"], "state": r["state"]}
        for r in judgement.violations
        if r not in failing
    ]
    cited: set[str] = set()
    for req in failing:
        bad = [t for t in req.get("tests", []) if t.get("outcome") == "failed"]
        nodeid = bad[0]["nodeid"] if bad else req["tests"][0]["nodeid"]
        first = progress.failures.get(nodeid)
        summary.failing.append(
            {
                "id": req["id"],
                "level": req["level"],
                "state": req["state"],
                "test": nodeid,
                "failure": _first(first.first_line) if first else "",
            }
        )
    for req in requirements:
        cited.update(t["nodeid"] for t in req.get("tests", []))
    summary.failing_tests = [t for t in summary.failing_tests if t["test"] not in cited]
    return summary
