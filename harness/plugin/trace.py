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

Blame (:mod:`harness.checks`): while a citing test runs, the checks it makes
are recorded; when it fails and the exception names the requirements whose
check failed (``orch_check``, ``expect("ORCH-0083: ...")``), only those become
``failing``: the other cited requirements count as passed by the test if their
checks had passed, else as not reached. The failure section then names the
blamed requirements first.

Reports: ``--orch-trace PATH`` (JSON ``orchq-trace/4``) and ``--orch-report-dir
DIR`` (``trace.json``, ``COMPLIANCE.md``, ``report.html``); the OpenAPI
operations behind each requirement come from ``x-req-id`` in ``--orch-openapi``
(default the project's ``openapi``, skipped when absent).

Under xdist, outcomes travel inside ``report.user_properties`` (which xdist
serialises) under the key ``requirements`` (and, for a blamed failure,
``requirements_blamed`` and ``requirements_checked``); the controller
aggregates, workers never write anything. The same keys land in JUnit XML as
properties."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from harness.plugin.settings import add
from harness.plugin.trace_recorder import TraceRecorder
from harness.plugin.trace_settings import (
    BLAMED,
    CHECKED,
    EVIDENCE_PROPERTY,
    GATE,
    INDEX,
    LOCK,
    OPENAPI,
    PROJECT_ONLY,
    PROPERTY,
    REPORT_DIR,
    REQUIRE_EVIDENCE,
    SECTION,
    TRACE,
    cited_property,
    run_index,
    tracing,
)
from harness.trace.states import GATE_LEVELS

if TYPE_CHECKING:
    from harness.checks import CheckRecord
    from harness.project import Project
    from harness.trace.index import Index


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
        index, shown = run_index(config, state)
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


_RECORD: pytest.StashKey[CheckRecord] = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Record the checks a citing test makes (see :mod:`harness.checks`)."""
    if tracing(item.config) is None or cited_property(item.user_properties) is None:
        return (yield)
    from harness.checks import recording

    with recording() as record:
        item.stash[_RECORD] = record
        return (yield)


def _blame_of(
    item: pytest.Item, call: pytest.CallInfo[None], cited: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(blamed IDs, cited IDs whose checks passed) of a failed phase, or None (unattributed)."""
    if call.excinfo is None:
        return None
    from harness.checks import failure_blame

    failed = failure_blame(call.excinfo.value, (AssertionError, pytest.fail.Exception))
    if failed is None:
        return None
    record = item.stash.get(_RECORD, None)
    passed = tuple(i for i in (record.passed if record else ()) if i in cited and i not in failed)
    return failed, passed


def _requirement_lines(index: Index, ids: tuple[str, ...]) -> list[str]:
    lines = []
    for req_id in ids:
        req = index.get(req_id)
        if req is not None:
            lines.append(f"{req.id} ({req.level}, {req.section}): {req.text}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Name the requirements a failing test breaks, inside its failure report.

    A failure its checks blamed on some requirements lists those first, and carries
    them (and the cited requirements whose checks passed) in ``user_properties``.
    The section goes into the ``longrepr`` itself (not ``report.sections``) so it
    is printed with the traceback even under ``--show-capture=no``, is carried by
    xdist's report serialisation, and lands in JUnit's failure text.
    """
    report = yield
    state = tracing(item.config) if report.failed else None
    if state is not None:
        ids = cited_property(item.user_properties)
        cached = state.index
        if ids is not None and cached is not None:
            blame = _blame_of(item, call, ids)
            if blame is None:
                text = "\n".join(_requirement_lines(cached[0], ids))
            else:
                failed, passed = blame
                report.user_properties.append((BLAMED, ",".join(failed)))
                report.user_properties.append((CHECKED, ",".join(passed)))
                others = tuple(i for i in ids if i not in failed)
                lines = ["failed (its check failed):", *_requirement_lines(cached[0], failed)]
                if others:
                    lines.append("also cited, not blamed:")
                    lines += _requirement_lines(cached[0], others)
                text = "\n".join(lines)
            longrepr = report.longrepr
            add = getattr(longrepr, "addsection", None)
            if callable(add):
                add(SECTION, text)
            else:
                report.sections.append((SECTION, text))
    return report
