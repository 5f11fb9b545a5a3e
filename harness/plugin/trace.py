"""Traceability plugin: ``@pytest.mark.req`` IDs checked at collection, judged by real outcomes.

Registered through the ``pytest11`` entry point, so it is loaded into *every*
pytest run in an environment where orchq is installed, our own suite included.
It therefore stays inert unless used: nothing beyond the standard library and
this module is imported at start-up, and the requirements index is read only
when a collected item carries ``@pytest.mark.req``, or ``--orch-trace`` or
``--orch-gate`` is given.

The gate (``--orch-gate=must|should``) ends a run whose tests all passed with
:data:`harness.exitcodes.TRACE_VIOLATION` (6) when a requirement of the gated
levels is not ``verified``, listing each one; a run with failing tests keeps
pytest's own exit code 1.

Error mechanism (why ``pytest.exit`` and not ``pytest.UsageError``): a bad
citation or a broken index is a *spec* problem, and CI must be able to tell it
apart from failing tests (1) and from a bad command line (4). Each problem is
printed as one line (``nodeid: message``) and the session ends with
:data:`harness.exitcodes.SPEC_ERROR` (7) before any test runs, so
``pytest --collect-only`` catches it in seconds, without a traceback.

Under xdist, outcomes travel inside ``report.user_properties`` (which xdist
serialises) under the key ``requirements``; the controller aggregates, workers
never write anything. The same key lands in JUnit XML as a property.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from harness.exitcodes import OK, SPEC_ERROR, TRACE_VIOLATION

if TYPE_CHECKING:
    from harness.trace.index import Index, Requirement

__all__ = [
    "PROPERTY",
    "SCHEMA",
    "STATES",
    "TraceRecorder",
    "requirement_state",
]

SCHEMA = "orchq-trace/1"
"""Version tag of the JSON report; bumped on any incompatible change."""

PROPERTY = "requirements"
"""``user_properties`` key carrying the comma-separated IDs an item cites."""

STATES: tuple[str, ...] = ("verified", "failing", "skipped-only", "xfail-only", "untested")
"""Requirement states this plugin computes (``suspect`` and ``flaky`` are not implemented yet)."""

DEFAULT_INDEX = "requirements/index.yaml"

_MARKER_HELP = (
    "req(*ids): the test verifies these requirement IDs of requirements/index.yaml "
    '(e.g. @pytest.mark.req("ORCH-0001", "ORCH-0002")); unknown or deleted IDs '
    "are a collection error"
)

GATE_LEVELS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "must": frozenset({"MUST", "MUST NOT"}),
    "should": frozenset({"MUST", "MUST NOT", "SHOULD", "SHOULD NOT"}),
}
"""Which requirement levels each ``--orch-gate`` value requires to be ``verified``."""

# Outcome precedence when phases disagree: a failure anywhere wins, then the
# xfail/skip outcomes, and ``passed`` only if nothing else was reported.
_OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4}


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--orch-index`` and ``--orch-trace`` in their own help group."""
    group = parser.getgroup("orchq traceability")
    group.addoption(
        "--orch-index",
        metavar="PATH",
        default=None,
        help=f"requirements index to resolve @pytest.mark.req IDs (default: {DEFAULT_INDEX} "
        "under the rootdir)",
    )
    group.addoption(
        "--orch-trace",
        metavar="PATH",
        default=None,
        help="write the traceability report (JSON, schema orchq-trace/1) to PATH",
    )
    group.addoption(
        "--orch-gate",
        choices=sorted(GATE_LEVELS),
        default="none",
        help="fail the run (exit code 6) unless every requirement of these levels is "
        "verified by a passing test: must = MUST and MUST NOT, should = also SHOULD "
        "and SHOULD NOT (default: none)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (``--strict-markers`` suites need it) and, on the
    controller only, the recorder that aggregates outcomes."""
    config.addinivalue_line("markers", _MARKER_HELP)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(TraceRecorder(config), "orchq-trace-recorder")


# ---------------------------------------------------------------- index


def _index_path(config: pytest.Config) -> tuple[Path, str]:
    """The index file and how to name it in messages and reports (rootdir-relative POSIX)."""
    option: str | None = config.getoption("orch_index")
    root = Path(config.rootpath)
    path = Path(option) if option else root / DEFAULT_INDEX
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    try:
        shown = Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows: no relative form exists
        shown = path.name
    return path, shown


def _load_index(config: pytest.Config) -> tuple[Index, str]:
    """Load the index once per process; raise ``TraceFileError`` (one line) if it is broken."""
    cached: tuple[Index, str] | None = getattr(config, "_orchq_index", None)
    if cached is not None:
        return cached
    from harness.trace.index import load_index  # lazily: only when needed

    path, shown = _index_path(config)
    index = load_index(path, shown)
    config._orchq_index = (index, shown)  # type: ignore[attr-defined]
    return index, shown


def _exit_spec_error(message: str) -> NoReturn:
    """End a session that has not started running tests: one line, exit code SPEC_ERROR."""
    pytest.exit(message, returncode=SPEC_ERROR)


# ---------------------------------------------------------------- collection


def _cited_ids(item: pytest.Item) -> list[object] | None:
    """All positional arguments of every ``req`` marker (class and module markers
    included), or ``None`` if the item has no such marker (the cheap common case)."""
    markers = list(item.iter_markers("req"))
    if not markers:
        return None
    ids: list[object] = []
    for marker in markers:
        ids.extend(marker.args)
    return ids


def _check_ids(nodeid: str, ids: list[object], index: Index, shown: str) -> list[str]:
    """One message per bad ID; an empty ``req()`` is an error too (it cites nothing)."""
    from harness.trace.index import is_valid_id

    if not ids:
        return [f"{nodeid}: @pytest.mark.req needs at least one requirement ID"]
    errors: list[str] = []
    for req_id in ids:
        if not isinstance(req_id, str) or not is_valid_id(req_id):
            errors.append(f"{nodeid}: malformed requirement ID {req_id!r} (expected ORCH-NNNN)")
        elif req_id not in index:
            errors.append(f"{nodeid}: unknown requirement ID {req_id} (not in {shown})")
        elif index.is_tombstone(req_id):
            errors.append(
                f"{nodeid}: requirement ID {req_id} was deleted (tombstone in {shown}); "
                "deleted IDs may not be cited"
            )
    return errors


def _report_spec_error(config: pytest.Config, nodeid: str, message: str) -> None:
    """Report a spec problem as a failed collection report of ``nodeid``.

    Why a collect report and not ``pytest.exit`` here: it is the one channel that
    works identically in a serial run and inside an xdist worker (xdist forwards
    failed collect reports to the controller; an ``Exit`` raised in a worker
    crashes the controller with an INTERNALERROR). pytest then stops with
    "N errors during collection" before running anything, and the controller's
    :class:`TraceRecorder` turns the exit code into SPEC_ERROR. The
    ``orchq_spec_error`` attribute survives xdist's serialisation (reports keep
    extra attributes), which is how the controller recognises our reports.
    """
    report = pytest.CollectReport(nodeid, "failed", message, [], orchq_spec_error=True)
    config.hook.pytest_collectreport(report=report)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Validate every citation and attach the IDs to the item's ``user_properties``.

    Attaching at collection time (rather than in a setup hook) guarantees every
    report of the item carries the IDs, even when setup is skipped by a marker
    evaluated before ours; JUnit XML shows them as the ``requirements`` property.
    ``trylast`` so deselection by ``-k``/``-m`` has already happened. Items with
    bad citations are removed (they also fail collection, see
    :func:`_report_spec_error`).
    """
    cited: list[tuple[pytest.Item, list[object]]] = []
    for item in items:
        ids = _cited_ids(item)
        if ids is not None:
            cited.append((item, ids))
    if not cited:
        return
    from harness.trace.index import TraceFileError

    try:
        index, shown = _load_index(config)
    except TraceFileError as exc:
        _report_spec_error(config, "", str(exc))
        bad = {id(item) for item, _ in cited}
        items[:] = [item for item in items if id(item) not in bad]
        return
    rejected: set[int] = set()
    for item, ids in cited:
        problems = _check_ids(item.nodeid, ids, index, shown)
        if problems:
            rejected.add(id(item))
            _report_spec_error(config, item.nodeid, "\n".join(problems))
            continue
        unique = sorted({str(i) for i in ids}, key=lambda i: (len(i), i))
        item.user_properties.append((PROPERTY, ",".join(unique)))
    if rejected:
        items[:] = [item for item in items if id(item) not in rejected]


# ---------------------------------------------------------------- outcomes


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


def requirement_state(outcomes: list[str]) -> str:
    """The state of one requirement from its citing cases' outcomes.

    ``verified`` needs every case to have passed (DESIGN §4). A mix without
    failures that is not all-passed cannot be verified; it takes the weakest
    evidence present: any xfailed/xpassed case makes it ``xfail-only``,
    otherwise it is ``skipped-only``.
    """
    if not outcomes:
        return "untested"
    if "failed" in outcomes:
        return "failing"
    if all(o == "passed" for o in outcomes):
        return "verified"
    if any(o in ("xfailed", "xpassed") for o in outcomes):
        return "xfail-only"
    return "skipped-only"


@dataclass(eq=False)  # plugins must stay hashable: pluggy keeps them in sets
class TraceRecorder:
    """Controller-side aggregation of outcomes per test item (xdist-safe).

    Registered only outside xdist workers; it sees every worker's reports
    through ``pytest_runtest_logreport`` as xdist replays them, reading the IDs
    from the serialised ``user_properties`` rather than from the item.
    """

    config: pytest.Config
    outcomes: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    """nodeid -> (cited IDs, outcome so far)."""

    spec_errors: int = 0
    """Collection reports of ours (bad citations, broken index) seen from any process."""

    violations: list[str] = field(default_factory=list)
    """Gate violations, one line each, for the terminal summary."""

    def _gate(self) -> str:
        gate: str = self.config.getoption("orch_gate")
        return gate

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """With ``--orch-trace``, a missing index must fail before tests run, not after."""
        if self.config.getoption("orch_trace") or self._gate() != "none":
            from harness.trace.index import TraceFileError

            try:
                _load_index(self.config)
            except TraceFileError as exc:
                _exit_spec_error(str(exc))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count our spec-error reports, local or forwarded by an xdist worker."""
        if report.failed and getattr(report, "orchq_spec_error", False):
            self.spec_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase into the item's outcome; items citing nothing are ignored."""
        ids: tuple[str, ...] | None = None
        for key, value in report.user_properties:
            if key == PROPERTY and isinstance(value, str):
                ids = tuple(value.split(","))
        if ids is None:
            return
        outcome = _phase_outcome(report)
        if outcome not in _OUTCOME_RANK:
            return  # e.g. pytest-rerunfailures' "rerun": only the final attempt counts
        previous = self.outcomes.get(report.nodeid)
        if previous is not None and _OUTCOME_RANK[previous[1]] >= _OUTCOME_RANK[outcome]:
            return
        self.outcomes[report.nodeid] = (ids, outcome)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Turn spec errors into exit code SPEC_ERROR; otherwise write the JSON report if asked."""
        if self.spec_errors:
            session.exitstatus = SPEC_ERROR
            return
        target: str | None = self.config.getoption("orch_trace")
        gate = self._gate()
        if not target and gate == "none":
            return
        index, shown = _load_index(self.config)
        if gate != "none":
            self._apply_gate(session, index, gate)
        if not target:
            return
        path = Path(target)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        from harness.trace.index import TraceFileError, write_text_atomic

        try:
            write_text_atomic(path, render_report(index, shown, self.outcomes), target)
        except TraceFileError as exc:
            sys.stderr.write(f"ERROR: {exc}\n")
            session.exitstatus = SPEC_ERROR

    def _apply_gate(self, session: pytest.Session, index: Index, gate: str) -> None:
        """Record each gated requirement that is not verified; exit TRACE_VIOLATION if any.

        pytest's own failure codes win: a run whose tests failed keeps exit code 1
        (the failing requirements are still listed), so CI can tell the two apart.
        """
        levels = GATE_LEVELS[gate]
        for req, state, _tests in requirement_states(index, self.outcomes):
            if req.level in levels and state != "verified":
                self.violations.append(f"{req.id} ({req.level}, {req.section}): {state}")
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


def requirement_states(
    index: Index, outcomes: dict[str, tuple[tuple[str, ...], str]]
) -> list[tuple[Requirement, str, list[dict[str, str]]]]:
    """Every active requirement with its state and its citing tests (sorted by nodeid)."""
    by_req: dict[str, list[dict[str, str]]] = {}
    for nodeid, (ids, outcome) in outcomes.items():
        for req_id in ids:
            by_req.setdefault(req_id, []).append({"nodeid": nodeid, "outcome": outcome})
    result = []
    for req in index.active():  # already in ID-number order
        tests = sorted(by_req.get(req.id, []), key=lambda t: t["nodeid"])
        result.append((req, requirement_state([t["outcome"] for t in tests]), tests))
    return result


def render_report(
    index: Index, shown: str, outcomes: dict[str, tuple[tuple[str, ...], str]]
) -> str:
    """The JSON report text: sorted keys and lists, no timestamps, no absolute paths,
    so equal outcomes give byte-identical files (serial or xdist alike)."""
    summary = dict.fromkeys(STATES, 0)
    requirements: list[dict[str, object]] = []
    for req, state, tests in requirement_states(index, outcomes):
        summary[state] += 1
        requirements.append(
            {
                "id": req.id,
                "level": req.level,
                "section": req.section,
                "state": state,
                "tests": tests,
            }
        )
    document = {
        "index": shown,
        "requirements": requirements,
        "schema": SCHEMA,
        "summary": summary,
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
