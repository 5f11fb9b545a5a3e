"""The controller's recorder: each test's outcome per requirement, then the trace, reports and gate.

Registered on the controller only (never on an xdist worker); it reads outcomes from
the reports' user_properties, keeps the worst phase outcome of each case (a
failure anywhere wins), and at session end writes the trace and reports asked for
and applies --orch-gate.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.exitcodes import OK, SPEC_ERROR, TRACE_VIOLATION
from harness.plugin.settings import orchq_session
from harness.plugin.trace_settings import (
    BLAMED,
    CHECKED,
    EVIDENCE_PROPERTY,
    INDEX,
    LOCK,
    OPENAPI,
    REPORT_DIR,
    REQUIRE_EVIDENCE,
    TRACE,
    Tracing,
    cited_property,
    exit_spec_error,
    gate_level,
    option_path,
    run_index,
)
from harness.trace.states import GATE_LEVELS

if TYPE_CHECKING:
    from harness.trace.report import Blame, CaseInfo, Trace

_OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4}
"""Outcome precedence when phases disagree: a failure anywhere wins, then the
xfail/skip outcomes, and ``passed`` only if nothing else was reported."""
_RERUN = "rerun"
"""pytest-rerunfailures' outcome for an attempt that failed and is run again."""


def _case_info(report: pytest.TestReport, failed: bool) -> CaseInfo:
    from harness.trace.report import CaseInfo

    kind, path, line = "unit", None, None
    for key, value in report.user_properties:
        if key == EVIDENCE_PROPERTY and isinstance(value, str):
            kind, _, where = value.partition(" ")
            path, _, number = where.rpartition(":")
            line = int(number) if number.isdigit() else None
    failure = None
    if failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or report.longreprtext
        lines = [text.strip() for text in str(message).splitlines() if text.strip()]
        failure = lines[0][:300] if lines else None
    return CaseInfo(kind, path or None, line, failure)


def _phase_outcome(report: pytest.TestReport) -> str:
    """passed / failed / skipped / xfailed / xpassed for one phase report.

    A strict XPASS is reported by pytest as ``failed`` and stays failed here.
    """
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return "xfailed"
        if report.passed:
            return "xpassed"
    return str(report.outcome)


@dataclass(eq=False)  # plugins must stay hashable: pluggy keeps them in sets
class TraceRecorder:
    """Controller-side aggregation of outcomes per test item (xdist-safe).

    Registered only outside xdist workers; it sees every worker's reports
    through ``pytest_runtest_logreport`` as xdist replays them, reading the IDs
    from the serialised ``user_properties`` rather than from the item.
    """

    config: pytest.Config
    state: Tracing
    outcomes: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    """nodeid -> (cited IDs, outcome so far)."""

    reran: set[str] = field(default_factory=set)
    """nodeids with at least one pytest-rerunfailures ``rerun`` attempt."""

    blames: dict[str, tuple[tuple[str, ...], tuple[str, ...]] | None] = field(default_factory=dict)
    """nodeid -> (blamed IDs, cited IDs checked) of its failed phases; None once a phase
    failed without blame (then the whole test's failure counts for every cited ID)."""
    cases: dict[str, CaseInfo] = field(default_factory=dict)
    """nodeid -> kind of evidence, place, first failure line (of the phase that decided)."""

    spec_errors: int = 0
    """Collection reports of ours (bad citations, broken index) seen from any process."""

    violations: list[str] = field(default_factory=list)
    """Gate violations, one line each, for the terminal summary."""

    _context: tuple[dict[str, str] | None, str, dict[str, list[str]] | None, str] | None = None
    """(lock, lock shown, operations, openapi shown), loaded once at session start."""

    def _gate(self) -> str:
        return gate_level(self.config)

    def _active(self) -> bool:
        """Whether this run reports or gates at all (otherwise nothing is loaded)."""
        session = orchq_session(self.config)
        return bool(session.value(TRACE) or session.value(REPORT_DIR) or self._gate() != "none")

    def _load_context(self) -> tuple[dict[str, str] | None, str, dict[str, list[str]] | None, str]:
        """Index, lock and OpenAPI operations; raises ``TraceFileError`` (one line)."""
        if self._context is None:
            from harness.trace.lock import load_lock
            from harness.trace.openapi import load_operations

            index, _ = run_index(self.config, self.state)
            lock_path, lock_shown = option_path(self.config, LOCK, "lock")
            api_path, api_shown = option_path(self.config, OPENAPI, "openapi")
            lock = load_lock(lock_path, lock_shown)
            operations = load_operations(api_path, api_shown, index)
            self._context = (lock, lock_shown, operations, api_shown)
        return self._context

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """A broken configuration, and when reporting or gating, a missing index, a broken
        lock or OpenAPI document must fail before tests run, not after."""
        if self.state.problem is not None:
            exit_spec_error(self.state.problem)
        if self._active():
            from harness.trace.index import TraceFileError

            try:
                self._load_context()
            except TraceFileError as exc:
                exit_spec_error(str(exc))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count our spec-error reports, local or forwarded by an xdist worker."""
        if report.failed and getattr(report, "orchq_spec_error", False):
            self.spec_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase into the item's outcome; items citing nothing are ignored.

        A ``rerun`` attempt does not count as an outcome, but is remembered: a
        case whose final attempt passed after one is ``flaky``.
        """
        ids = cited_property(report.user_properties)
        if ids is None:
            return
        outcome = _phase_outcome(report)
        if outcome not in _OUTCOME_RANK:
            if outcome == _RERUN:
                self.reran.add(report.nodeid)
            return
        if outcome == "failed":
            self._note_blame(report)
        previous = self.outcomes.get(report.nodeid)
        if previous is not None and _OUTCOME_RANK[previous[1]] >= _OUTCOME_RANK[outcome]:
            return
        self.outcomes[report.nodeid] = (ids, outcome)
        self.cases[report.nodeid] = _case_info(report, outcome == "failed")

    def _note_blame(self, report: pytest.TestReport) -> None:
        failed = cited_property(report.user_properties, BLAMED)
        passed = cited_property(report.user_properties, CHECKED) or ()
        known = report.nodeid in self.blames
        before = self.blames.get(report.nodeid)
        if failed is None or (known and before is None):
            self.blames[report.nodeid] = None
        elif before is None:
            self.blames[report.nodeid] = (failed, passed)
        else:
            union = tuple(dict.fromkeys((*before[0], *failed)))
            both = tuple(i for i in before[1] if i in passed and i not in union)
            self.blames[report.nodeid] = (union, both)

    def final_blame(self) -> dict[str, Blame]:
        """How each failed test's failure was attributed, where every failed phase was."""
        from harness.trace.report import Blame

        return {
            nodeid: Blame(blame[0], blame[1])
            for nodeid, blame in self.blames.items()
            if blame is not None and self.outcomes.get(nodeid, ((), ""))[1] == "failed"
        }

    def final_outcomes(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """Outcomes with ``passed``-after-a-rerun turned into ``flaky``."""
        return {
            nodeid: (ids, "flaky" if outcome == "passed" and nodeid in self.reran else outcome)
            for nodeid, (ids, outcome) in self.outcomes.items()
        }

    def trace(self) -> Trace:
        """The run's :class:`~harness.trace.report.Trace` (after the context was loaded)."""
        from harness.trace.index import ORCH
        from harness.trace.report import DEFAULT_TITLE, build_trace

        index, shown = run_index(self.config, self.state)
        lock, lock_shown, operations, api_shown = self._load_context()
        project = self.state.project
        index_path, _ = option_path(self.config, INDEX, "index")
        # The spec the index was extracted from: its path is relative to the project root,
        # an ancestor of the index (a checkout's, or the copy shipped inside the wheel).
        spec_path = next(
            (
                folder / index.spec
                for folder in index_path.resolve().parents
                if (folder / index.spec).is_file()
            ),
            None,
        )
        spec_shown = self._shown(spec_path) if spec_path is not None else None
        return build_trace(
            index,
            shown,
            self.final_outcomes(),
            lock,
            lock_shown,
            operations,
            api_shown,
            title=project.title if project is not None else DEFAULT_TITLE,
            scheme=project.scheme if project is not None else ORCH,
            blame=self.final_blame(),
            cases=self.cases,
            spec=spec_shown,
        )

    def _shown(self, path: Path) -> str:
        """``path`` relative to the rootdir (POSIX), as reports name files."""
        import os

        try:
            return Path(os.path.relpath(path, self.config.rootpath)).as_posix()
        except ValueError:
            return path.name

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Turn spec errors into exit code SPEC_ERROR; otherwise gate and write the reports."""
        if self.spec_errors:
            session.exitstatus = SPEC_ERROR
            return
        if not self._active():
            return
        from harness.trace.index import TraceFileError
        from harness.trace.outputs import REPORT_FILES, write_outputs

        try:
            trace = self.trace()
        except TraceFileError as exc:  # only if an input changed during the run
            sys.stderr.write(f"ERROR: {exc}\n")
            session.exitstatus = SPEC_ERROR
            return
        gate = self._gate()
        if gate != "none":
            self._apply_gate(session, trace, gate)
        targets: list[tuple[str, Path, str]] = []
        settings = orchq_session(self.config)
        target = settings.path(TRACE)
        if target is not None:
            targets.append(("json", target, str(settings.value(TRACE))))
        report_dir = settings.path(REPORT_DIR)
        if report_dir is not None:
            shown_dir = str(settings.value(REPORT_DIR)).rstrip("/")
            for kind, name in REPORT_FILES.items():
                targets.append((kind, report_dir / name, f"{shown_dir}/{name}"))
        try:
            write_outputs(trace, targets, root=Path(self.config.rootpath))
        except TraceFileError as exc:
            sys.stderr.write(f"ERROR: {exc}\n")
            session.exitstatus = SPEC_ERROR

    def _apply_gate(self, session: pytest.Session, trace: Trace, gate: str) -> None:
        """Record each gated requirement that is not verified; exit TRACE_VIOLATION if any.

        ``suspect``, ``flaky`` and ``partly-skipped`` requirements are not verified, so
        they are refused too. pytest's own failure codes win: a run whose tests failed keeps exit
        code 1 (the failing requirements are still listed), so CI can tell the two apart.
        """
        from harness.trace.evidence import evidence_violations, parse_rules
        from harness.trace.report import evidence_states

        levels = GATE_LEVELS[gate]
        rows = trace.rows()
        for req, state, _tests in rows:
            if req.level in levels and state != "verified":
                self.violations.append(f"{req.id} ({req.level}, {req.section}): {state}")
        rules = parse_rules(orchq_session(self.config).value(REQUIRE_EVIDENCE))
        evidence = [
            (req.id, req.level, req.section, evidence_states(tests, trace.cases))
            for req, _state, tests in rows
        ]
        self.violations.extend(evidence_violations(rules, evidence))
        if self.violations and session.exitstatus == OK:
            session.exitstatus = TRACE_VIOLATION

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.violations:
            return
        gate = self._gate()
        terminalreporter.section(f"orchq traceability gate ({gate})", red=True)
        terminalreporter.line(
            f"{len(self.violations)} requirement(s) of the gated levels are not verified "
            "by a passing test:"
        )
        for line in self.violations:
            terminalreporter.line(f"  {line}")
