"""What the traceability plugin does in a run: its settings, the user-property keys, the index.

:func:`tracing` decides once per run (stashed on the config) whether the plugin acts
and with which project configuration; a problem found there is kept in
:attr:`Tracing.problem` and ends the run as a spec error before any test runs.
The user_properties keys are the only channel from xdist workers to the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from harness.exitcodes import SPEC_ERROR
from harness.plugin.settings import Setting, orchq_session
from harness.trace.states import GATE_LEVELS, SCHEMA

if TYPE_CHECKING:
    from harness.project import Project
    from harness.trace.index import Index

PROPERTY = "requirements"
"""``user_properties`` key carrying the comma-separated IDs an item cites."""
BLAMED = "requirements_blamed"
"""``user_properties`` key of a failed phase: the IDs its failure is blamed on."""
CHECKED = "requirements_checked"
"""``user_properties`` key of a blamed failure: the cited IDs whose checks had passed."""
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
    return gate_level(config) != "none"


def gate_level(config: pytest.Config) -> str:
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
    if state is not None and state.problem is None and gate_level(config) not in GATE_LEVELS:
        state.problem = (
            f"orchq_gate = {gate_level(config)!r}: expected one of {', '.join(GATE_LEVELS)}"
        )
    if state is not None and state.problem is None:
        from harness.trace.evidence import EvidenceRuleError, parse_rules

        try:
            parse_rules(orchq_session(config).value(REQUIRE_EVIDENCE))
        except EvidenceRuleError as exc:
            state.problem = f"orchq_require_evidence: {exc}"
    config.stash[_TRACING] = state
    return state


def option_path(config: pytest.Config, setting: Setting, key: str) -> tuple[Path, str]:
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


def run_index(config: pytest.Config, state: Tracing) -> tuple[Index, str]:
    """Load the index once per process; raise ``TraceFileError`` (one line) if it is broken."""
    if state.index is not None:
        return state.index
    from harness.trace.index import ORCH
    from harness.trace.index_file import load_index  # lazily: only when needed

    path, shown = option_path(config, INDEX, "index")
    scheme = state.project.scheme if state.project is not None else ORCH
    state.index = (load_index(path, shown, scheme), shown)
    return state.index


def exit_spec_error(message: str) -> NoReturn:
    """End a session that has not started running tests: one line, exit code SPEC_ERROR."""
    pytest.exit(message, returncode=SPEC_ERROR)


def cited_property(
    properties: list[tuple[str, object]], key: str = PROPERTY
) -> tuple[str, ...] | None:
    for name, value in properties:
        if name == key and isinstance(value, str):
            return tuple(value.split(",")) if value else ()
    return None
