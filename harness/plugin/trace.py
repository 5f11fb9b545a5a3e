"""Traceability plugin: ``@pytest.mark.req`` IDs checked at collection, judged by real outcomes.

Loaded by the ``orchq`` plugin into *every* pytest run in an environment
where orchq is installed, so it acts only where the project opts in: an
``orchq_index`` ini option (or ``index`` in ``[tool.orchq]``, see
:mod:`harness.project`), or one of ``--orch-index``, ``--orch-trace``,
``--orch-report-dir``, ``--orch-gate``. Otherwise it registers no marker and
reads nothing, and a ``req`` marker of another tool is left alone. When it
acts, the project's configuration names the ID prefix, the index, the lock,
the OpenAPI document and the report title; the index is read when a
collected item carries ``@pytest.mark.req`` or a report or gate is asked for.

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

States (``verified``, ``failing``, ``flaky``, ``suspect``, ``xfail``,
``partly-skipped``, ``skipped``, ``untested``) and their precedence are
defined in :mod:`harness.trace.report`; ``suspect`` compares each
requirement's text hash with the acceptance lock (``--orch-lock``, default
the project's ``lock``; missing = no suspects), ``flaky`` marks a case that
passed only after a pytest-rerunfailures ``rerun``. Every failing
report of a citing test gets an "orchq requirements" section listing each cited
ID with level and text, so the failure names the requirement it breaks.

Reports: ``--orch-trace PATH`` (JSON ``orchq-trace/4``) and ``--orch-report-dir
DIR`` (``trace.json``, ``COMPLIANCE.md``, ``report.html``); the OpenAPI
operations behind each requirement come from ``x-req-id`` in ``--orch-openapi``
(default the project's ``openapi``, skipped when absent).

Under xdist, outcomes travel inside ``report.user_properties`` (which xdist
serialises) under the key ``requirements``; the controller aggregates, workers
never write anything. The same key lands in JUnit XML as a property.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from harness.exitcodes import OK, SPEC_ERROR, TRACE_VIOLATION
from harness.plugin.settings import Setting, add, orchq_session
from harness.trace.report import GATE_LEVELS, SCHEMA, STATES, requirement_state

if TYPE_CHECKING:
    from harness.project import Project
    from harness.trace.index import Index
    from harness.trace.report import CaseInfo, Trace

__all__ = [
    "GATE_LEVELS",
    "PROPERTY",
    "SCHEMA",
    "STATES",
    "TraceRecorder",
    "requirement_state",
    "tracing",
]

PROPERTY = "requirements"
"""``user_properties`` key carrying the comma-separated IDs an item cites."""
EVIDENCE_PROPERTY = "evidence"
"""``user_properties`` key carrying a citing item's kind of evidence and ``file:line``."""

SECTION = "orchq requirements"
"""Title of the report section listing a failing test's cited requirements."""


INDEX = Setting(
    "index",
    "requirements index the @pytest.mark.req IDs must belong to; setting it turns "
    "traceability on (default: the project's index, requirements/index.yaml)",
)
TRACE = Setting("trace", "write the traceability report (JSON, schema " + SCHEMA + ") to PATH")
REPORT_DIR = Setting(
    "report_dir", "write trace.json, COMPLIANCE.md and report.html (self-contained) into DIR"
)
LOCK = Setting(
    "lock",
    "acceptance lock written by `orchq trace accept`; requirements whose text hash differs "
    "are suspect (default: the project's lock, requirements/accepted.lock.yaml; missing = "
    "no suspects)",
)
OPENAPI = Setting(
    "openapi",
    "OpenAPI document whose operations' x-req-id the reports list (default: the project's "
    "openapi, contracts/openapi/orchqueue.yaml, if present)",
)
REQUIRE_EVIDENCE = Setting(
    "require_evidence",
    "under the gate, also refuse requirements of a level without a verified test of one of "
    'these kinds, e.g. "MUST = contract | property" (clauses split by ";" or lines; kinds: '
    "contract, cdc, fuzz, property, determinism, e2e, metrics, integration, unit)",
)
GATE = Setting(
    "gate",
    "fail the run (exit code 6) unless every requirement of these levels is verified by a "
    "passing test: must = MUST and MUST NOT, should = also SHOULD and SHOULD NOT (default: none)",
)
PROJECT_ONLY = (
    Setting("prefix", "requirement ID prefix of the project (default ORCH)", cli=False),
    Setting("spec", "the project's normative spec (default specs/orchestrator-spec.md)", cli=False),
    Setting("title", "the project's name for its spec, heading the reports", cli=False),
)
"""Project settings with no command-line flag (see :mod:`harness.project`)."""

_OUTCOME_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4}
"""Outcome precedence when phases disagree: a failure anywhere wins, then the
xfail/skip outcomes, and ``passed`` only if nothing else was reported."""
_RERUN = "rerun"
"""pytest-rerunfailures' outcome for an attempt that failed and is run again."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The traceability options (and their ini twins) in their own help group."""
    group = "orchq traceability"
    add(parser, group, INDEX, metavar="PATH")
    add(parser, group, TRACE, metavar="PATH")
    add(parser, group, REPORT_DIR, metavar="DIR")
    add(parser, group, LOCK, metavar="PATH")
    add(parser, group, OPENAPI, metavar="PATH")
    add(parser, group, GATE, choices=sorted(GATE_LEVELS))
    add(parser, group, REQUIRE_EVIDENCE, metavar="RULES")
    for setting in PROJECT_ONLY:
        add(parser, group, setting)


# ---------------------------------------------------------------- the run's trace settings


@dataclass
class Tracing:
    """What the traceability plugin does in this run (``None`` from :func:`tracing`: nothing)."""

    project: Project | None
    problem: str | None = None
    """A broken configuration (one line): the run ends with SPEC_ERROR before tests run."""
    index: tuple[Index, str] | None = None
    """The loaded index and how reports name it, once loaded."""

    def marker_help(self) -> str:
        example = self.project.scheme.example if self.project else "ORCH-0001"
        index = self.project.get("index") if self.project else "the index"
        return (
            f"req(*ids): the test verifies these requirement IDs of {index} "
            f'(e.g. @pytest.mark.req("{example}")); unknown or deleted IDs are a collection error'
        )


_TRACING = pytest.StashKey["Tracing | None"]()


def _wanted(config: pytest.Config) -> bool:
    """A command-line option that asks for traceability, whatever the project says."""
    options = (INDEX, TRACE, REPORT_DIR)
    if any(config.getoption(s.dest, None) for s in options):
        return True
    return _gate(config) != "none"


def _gate(config: pytest.Config) -> str:
    return orchq_session(config).value(GATE) or "none"


def tracing(config: pytest.Config) -> Tracing | None:
    """The run's :class:`Tracing`, or ``None`` when the project did not opt in."""
    if _TRACING in config.stash:
        return config.stash[_TRACING]
    from harness.project import ProjectError

    state: Tracing | None
    try:
        project = orchq_session(config).project()
    except ProjectError as exc:
        state = Tracing(None, str(exc))
    else:
        opted_in = project.given("index") or _wanted(config)
        state = Tracing(project) if opted_in else None
    if state is not None and state.problem is None and _gate(config) not in GATE_LEVELS:
        state.problem = f"orchq_gate = {_gate(config)!r}: expected one of {', '.join(GATE_LEVELS)}"
    if state is not None and state.problem is None:
        from harness.trace.evidence import EvidenceRuleError, parse_rules

        try:
            parse_rules(orchq_session(config).value(REQUIRE_EVIDENCE))
        except EvidenceRuleError as exc:
            state.problem = f"orchq_require_evidence: {exc}"
    config.stash[_TRACING] = state
    return state


def pytest_configure(config: pytest.Config) -> None:
    """When tracing: register the marker (``--strict-markers`` suites need it) and, on the
    controller only, the recorder that aggregates outcomes."""
    state = tracing(config)
    if state is None:
        return
    config.addinivalue_line("markers", state.marker_help())
    config.addinivalue_line(
        "markers",
        "evidence(kind): the kind of evidence this test gives the requirements it cites "
        "(contract, cdc, fuzz, property, determinism, e2e, metrics, integration, unit), "
        "where its suite marker and place would not say",
    )
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(TraceRecorder(config, state), "orchq-trace-recorder")


# ---------------------------------------------------------------- index


def _option_path(config: pytest.Config, setting: Setting, key: str) -> tuple[Path, str]:
    """A path setting (or the project's value), and how to name it: rootdir-relative POSIX."""
    import os

    session = orchq_session(config)
    path = session.path(setting)
    if path is None:
        state = config.stash.get(_TRACING, None)
        project = state.project if state is not None else None
        if project is None:
            project = session.project()
        path = project.path(key)
    root = Path(config.rootpath)
    try:
        shown = Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # another drive on Windows: no relative form exists
        shown = path.name
    return path, shown


def _load_index(config: pytest.Config, state: Tracing) -> tuple[Index, str]:
    """Load the index once per process; raise ``TraceFileError`` (one line) if it is broken."""
    if state.index is not None:
        return state.index
    from harness.trace.index import ORCH, load_index  # lazily: only when needed

    path, shown = _option_path(config, INDEX, "index")
    scheme = state.project.scheme if state.project is not None else ORCH
    state.index = (load_index(path, shown, scheme), shown)
    return state.index


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


def _check_ids(
    nodeid: str, ids: list[object], index: Index, shown: str, project: Project | None
) -> list[str]:
    """One message per bad ID; an empty ``req()`` is an error too (it cites nothing)."""
    from harness.trace.index import ORCH

    scheme = project.scheme if project is not None else ORCH
    if not ids:
        return [f"{nodeid}: @pytest.mark.req needs at least one requirement ID"]
    errors: list[str] = []
    for req_id in ids:
        if not isinstance(req_id, str) or not scheme.is_valid(req_id):
            errors.append(
                f"{nodeid}: malformed requirement ID {req_id!r} (expected {scheme.prefix}-NNNN)"
            )
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
    state = tracing(config)
    if state is None:
        return  # not opted in: another tool's ``req`` marker is none of our business
    if state.problem is not None:
        _report_spec_error(config, "", state.problem)
        items[:] = []
        return
    cited: list[tuple[pytest.Item, list[object]]] = []
    for item in items:
        ids = _cited_ids(item)
        if ids is not None:
            cited.append((item, ids))
    if not cited:
        return
    from harness.trace.index import TraceFileError

    try:
        index, shown = _load_index(config, state)
    except TraceFileError as exc:
        _report_spec_error(config, "", str(exc))
        bad = {id(item) for item, _ in cited}
        items[:] = [item for item in items if id(item) not in bad]
        return
    rejected: set[int] = set()
    for item, ids in cited:
        problems = _check_ids(item.nodeid, ids, index, shown, state.project)
        try:
            evidence = _evidence_of(item)
        except ValueError as exc:  # an unknown kind in @pytest.mark.evidence
            problems.append(str(exc))
        if problems:
            rejected.add(id(item))
            _report_spec_error(config, item.nodeid, "\n".join(problems))
            continue
        unique = sorted({str(i) for i in ids}, key=lambda i: (len(i), i))
        item.user_properties.append((PROPERTY, ",".join(unique)))
        item.user_properties.append((EVIDENCE_PROPERTY, evidence))
    if rejected:
        items[:] = [item for item in items if id(item) not in rejected]


def _evidence_of(item: pytest.Item) -> str:
    """``kind file:line`` of a citing item (:mod:`harness.trace.evidence`)."""
    from harness.trace.evidence import kind_of, location_of

    path, line = location_of(item)
    return f"{kind_of(item)} {path}:{line}"


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


# ---------------------------------------------------------------- failure sections


def _cited_property(properties: list[tuple[str, object]]) -> tuple[str, ...] | None:
    for key, value in properties:
        if key == PROPERTY and isinstance(value, str):
            return tuple(value.split(","))
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Name the requirements a failing test breaks, inside its failure report.

    The section goes into the ``longrepr`` itself (not ``report.sections``) so it
    is printed with the traceback even under ``--show-capture=no``, is carried by
    xdist's report serialisation, and lands in JUnit's failure text.
    """
    report = yield
    state = tracing(item.config) if report.failed else None
    if state is not None:
        ids = _cited_property(item.user_properties)
        cached = state.index
        if ids is not None and cached is not None:
            lines = []
            for req_id in ids:
                req = cached[0].get(req_id)
                if req is not None:
                    lines.append(f"{req.id} ({req.level}, {req.section}): {req.text}")
            text = "\n".join(lines)
            longrepr = report.longrepr
            add = getattr(longrepr, "addsection", None)
            if callable(add):
                add(SECTION, text)
            else:
                report.sections.append((SECTION, text))
    return report


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

    cases: dict[str, CaseInfo] = field(default_factory=dict)
    """nodeid -> kind of evidence, place, first failure line (of the phase that decided)."""

    spec_errors: int = 0
    """Collection reports of ours (bad citations, broken index) seen from any process."""

    violations: list[str] = field(default_factory=list)
    """Gate violations, one line each, for the terminal summary."""

    _context: tuple[dict[str, str] | None, str, dict[str, list[str]] | None, str] | None = None
    """(lock, lock shown, operations, openapi shown), loaded once at session start."""

    def _gate(self) -> str:
        return _gate(self.config)

    def _active(self) -> bool:
        """Whether this run reports or gates at all (otherwise nothing is loaded)."""
        session = orchq_session(self.config)
        return bool(session.value(TRACE) or session.value(REPORT_DIR) or self._gate() != "none")

    def _load_context(self) -> tuple[dict[str, str] | None, str, dict[str, list[str]] | None, str]:
        """Index, lock and OpenAPI operations; raises ``TraceFileError`` (one line)."""
        if self._context is None:
            from harness.trace.lock import load_lock
            from harness.trace.openapi import load_operations

            index, _ = _load_index(self.config, self.state)
            lock_path, lock_shown = _option_path(self.config, LOCK, "lock")
            api_path, api_shown = _option_path(self.config, OPENAPI, "openapi")
            lock = load_lock(lock_path, lock_shown)
            operations = load_operations(api_path, api_shown, index)
            self._context = (lock, lock_shown, operations, api_shown)
        return self._context

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """A broken configuration, and when reporting or gating, a missing index, a broken
        lock or OpenAPI document must fail before tests run, not after."""
        if self.state.problem is not None:
            _exit_spec_error(self.state.problem)
        if self._active():
            from harness.trace.index import TraceFileError

            try:
                self._load_context()
            except TraceFileError as exc:
                _exit_spec_error(str(exc))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Count our spec-error reports, local or forwarded by an xdist worker."""
        if report.failed and getattr(report, "orchq_spec_error", False):
            self.spec_errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase into the item's outcome; items citing nothing are ignored.

        A ``rerun`` attempt does not count as an outcome, but is remembered: a
        case whose final attempt passed after one is ``flaky``.
        """
        ids = _cited_property(report.user_properties)
        if ids is None:
            return
        outcome = _phase_outcome(report)
        if outcome not in _OUTCOME_RANK:
            if outcome == _RERUN:
                self.reran.add(report.nodeid)
            return
        previous = self.outcomes.get(report.nodeid)
        if previous is not None and _OUTCOME_RANK[previous[1]] >= _OUTCOME_RANK[outcome]:
            return
        self.outcomes[report.nodeid] = (ids, outcome)
        self.cases[report.nodeid] = _case_info(report, outcome == "failed")

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

        index, shown = _load_index(self.config, self.state)
        lock, lock_shown, operations, api_shown = self._load_context()
        project = self.state.project
        index_path, _ = _option_path(self.config, INDEX, "index")
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
