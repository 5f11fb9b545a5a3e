"""``orchq trace``: render, merge, diff traceability reports and accept requirement texts.

Every input problem (missing or malformed trace JSON, broken index or lock)
is one line ``file: problem`` on stderr and exit code 7
(:data:`harness.exitcodes.SPEC_ERROR`); outputs are written atomically and only
after all inputs were read, so a failed command leaves no half-written file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from harness import exitcodes
from harness.project import ProjectError, find_project
from harness.trace.diff import render_diff
from harness.trace.index import TraceFileError
from harness.trace.index_file import load_index, read_text_file, write_text_atomic
from harness.trace.lock import load_lock, write_lock
from harness.trace.outputs import write_outputs
from harness.trace.report import Trace, index_digest
from harness.trace.states import STATES
from harness.trace.trace_reader import merge_traces, parse_trace

__all__ = ["trace_group"]

_FILE = click.Path(path_type=Path, dir_okay=True, file_okay=True)


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise click.exceptions.Exit(exitcodes.SPEC_ERROR)


def _load(path: Path) -> Trace:
    try:
        return parse_trace(read_text_file(path, str(path), "trace"), str(path))
    except TraceFileError as exc:
        _fail(str(exc))


def _summary(trace: Trace) -> str:
    counts = dict.fromkeys(STATES, 0)
    for _, state, _ in trace.rows():
        counts[state] += 1
    return ", ".join(f"{state} {counts[state]}" for state in STATES)


def _relative(path: Path) -> Path:
    """A default path as the user would type it from the working directory."""
    try:
        return Path(os.path.relpath(path))
    except ValueError:  # another drive on Windows
        return path


@click.group("trace", context_settings={"help_option_names": ["-h", "--help"]})
def trace_group() -> None:
    """Traceability reports: render, merge CI shards, diff for PRs, accept texts.

    Exit codes: 0 success, 6 (gate) the gate refused, 7 an input (trace JSON, index,
    lock, project configuration) is missing or broken. The traces carry the project's
    title and ID prefix; accept reads the project's index and lock ([tool.orchq]).
    """


@trace_group.command("report")
@click.argument("trace_file", metavar="TRACE.json", type=_FILE)
@click.option(
    "--md", "md", type=_FILE, default=None, help="Write COMPLIANCE.md-style Markdown here."
)
@click.option("--html", "html", type=_FILE, default=None, help="Write the HTML matrix here.")
def report_command(trace_file: Path, md: Path | None, html: Path | None) -> None:
    """Render a trace (orchq-trace/4 JSON) as Markdown and/or self-contained HTML.

    Links to the spec and to the test files are relative to the project (the
    nearest pyproject.toml configuring orchq, else the working directory).
    """
    trace = _load(trace_file)
    targets = [(k, p, str(p)) for k, p in (("md", md), ("html", html)) if p is not None]
    try:
        root: Path | None = find_project(Path.cwd()).root
    except ProjectError:
        root = None
    try:
        write_outputs(trace, targets, root=root)
    except TraceFileError as exc:
        _fail(str(exc))
    click.echo(f"{trace_file}: {_summary(trace)}")


@trace_group.command("merge")
@click.argument("traces", metavar="A.json B.json ...", type=_FILE, nargs=-1, required=True)
@click.option("-o", "--output", type=_FILE, required=True, help="Where to write the merged trace.")
def merge_command(traces: tuple[Path, ...], output: Path) -> None:
    """Merge traces of CI shards into one, equal to an unsharded run's.

    A test found in two shards keeps the worse outcome; shards built from
    different indexes, locks or OpenAPI documents are refused.
    """
    loaded = [(str(p), _load(p)) for p in traces]
    try:
        merged = merge_traces(loaded)
        write_outputs(merged, [("json", output, str(output))])
    except TraceFileError as exc:
        _fail(str(exc))
    click.echo(f"{output}: merged {len(traces)} trace(s), {len(merged.tests)} test case(s)")


@trace_group.command("gate")
@click.argument("trace_file", metavar="TRACE.json", type=_FILE)
@click.option(
    "--level",
    "gate",
    type=click.Choice(["must", "should"]),
    default="must",
    show_default=True,
    help="must: MUST and MUST NOT; should: also SHOULD and SHOULD NOT.",
)
@click.option(
    "--require-evidence",
    "rules_text",
    default=None,
    metavar="RULES",
    help="Also refuse a level without a verified test of these kinds, e.g. "
    '"MUST = contract | property" (as --orch-require-evidence).',
)
def gate_command(trace_file: Path, gate: str, rules_text: str | None) -> None:
    """Apply the traceability gate to a trace, e.g. one merged from CI shards.

    Exit 6 naming every gated requirement that is not verified (or lacks the
    evidence a rule asks for), as ``pytest --orch-gate`` does for a single run;
    exit 0 otherwise.
    """
    from harness.trace.evidence import EvidenceRuleError, evidence_violations, parse_rules
    from harness.trace.report import evidence_states
    from harness.trace.states import GATE_LEVELS

    try:
        rules = parse_rules(rules_text)
    except EvidenceRuleError as exc:
        raise click.BadParameter(str(exc), param_hint="--require-evidence") from None
    trace = _load(trace_file)
    levels = GATE_LEVELS[gate]
    rows = trace.rows()
    violations = [
        f"{req.id} ({req.level}, {req.section}): {state}"
        for req, state, _tests in rows
        if req.level in levels and state != "verified"
    ]
    violations += evidence_violations(
        rules,
        [(r.id, r.level, r.section, evidence_states(t, trace.cases)) for r, _s, t in rows],
    )
    if violations:
        click.echo(
            f"{trace_file}: gate '{gate}' refused: {len(violations)} requirement(s) not verified "
            "by a passing test:",
            err=True,
        )
        for line in violations:
            click.echo(f"  {line}", err=True)
        raise click.exceptions.Exit(exitcodes.TRACE_VIOLATION)
    click.echo(f"{trace_file}: gate '{gate}' passed")


@trace_group.command("diff")
@click.argument("base", metavar="BASE.json", type=_FILE)
@click.argument("head", metavar="HEAD.json", type=_FILE)
@click.option(
    "-o", "--output", type=_FILE, default=None, help="Write the Markdown here, not stdout."
)
def diff_command(base: Path, head: Path, output: Path | None) -> None:
    """A Markdown PR comment: new/removed requirements, regressions, uncovered MUSTs, texts."""
    text = render_diff(_load(base), _load(head))
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_text_atomic(output, text, str(output))
    except TraceFileError as exc:
        _fail(str(exc))


@trace_group.command("accept")
@click.option("--index", "index", type=_FILE, default=None, help="[default: the project's index]")
@click.option("--lock", "lock", type=_FILE, default=None, help="[default: the project's lock]")
@click.option(
    "--trace",
    "trace_file",
    type=_FILE,
    default=None,
    help="Accept only requirements whose citing tests all passed in this trace.",
)
def accept_command(index: Path | None, lock: Path | None, trace_file: Path | None) -> None:
    """Record the current text hash of requirements in the acceptance lock.

    Accepting says "the tests citing this requirement were reviewed against its
    current text". Without --trace every active requirement is accepted. With
    --trace (which must come from the current index) only requirements that have
    citing tests and all of them passed are (re-)accepted; the others keep their
    previous lock entry, so a changed text without passing tests stays suspect.
    Entries of requirements no longer in the spec are dropped.
    """
    try:
        project = find_project(Path.cwd())
    except ProjectError as exc:
        _fail(str(exc))
    index_path = index if index is not None else _relative(project.path("index"))
    lock_path = lock if lock is not None else _relative(project.path("lock"))
    try:
        idx = load_index(index_path, str(index_path), project.scheme)
        previous = load_lock(lock_path, str(lock_path)) or {}
    except TraceFileError as exc:
        _fail(str(exc))
    active = {r.id: r.sha256 for r in idx.active()}
    if trace_file is None:
        accepted = dict(active)
        chosen = len(accepted)
    else:
        trace = _load(trace_file)
        if trace.index_sha256 != index_digest(idx):
            _fail(f"{trace_file}: made from another requirements index than {index_path}")
        accepted = {i: s for i, s in previous.items() if i in active}
        chosen = 0
        for req, _state, tests in trace.rows():
            if tests and all(outcome == "passed" for _, outcome in tests):
                accepted[req.id] = active[req.id]
                chosen += 1
    try:
        write_lock(lock_path, accepted, str(lock_path))
    except TraceFileError as exc:
        _fail(str(exc))
    click.echo(f"{lock_path}: accepted {chosen} requirement(s), {len(accepted)} in the lock")


@trace_group.command("dod")
@click.argument("req_id", metavar="ORCH-XXXX")
@click.option(
    "--trace",
    "trace_file",
    type=_FILE,
    default=Path("orchq-report") / "trace.json",
    show_default=True,
    help="The trace to read (orchq verify and --orch-report-dir write trace.json).",
)
def dod_command(req_id: str, trace_file: Path) -> None:
    """Print the Definition-of-Done checklist of one requirement, filled in from a trace.

    One line per item of the test plan's checklist (contracts, CDC, provider,
    properties, determinism, E2E, observability, compliance): [x] when tests of
    the kinds that prove it all passed, [!] when one of them did not, [ ] when
    no test of those kinds cites the requirement.
    """
    from harness.trace.dod import checklist

    trace = _load(trace_file)
    try:
        lines = checklist(trace, req_id)
    except KeyError:
        _fail(f"{trace_file}: no requirement {req_id} (not in the trace's index, or deleted)")
    for line in lines:
        click.echo(line)
