"""``orchq verify``: certify an OrchQueue v1 implementation with the conformance suite.

Exit codes (``harness.exitcodes``; pytest's own pass through): 0 all selected
suites passed and the gate is satisfied; 1 tests failed; 2 a bad command line
or a target that cannot be verified (unreachable, wrong token, not OrchQueue
v1), or pytest was interrupted; 3 pytest internal error; 4 pytest usage error;
5 no tests collected; 6 the gate refused the run (a gated requirement is not
verified); 7 the spec, the index or orchq's installation is broken.

What it prints: live progress per suite (bars on a terminal, one line per
suite step otherwise, so a CI log shows progress as it happens), then the
requirements by state and what failed. Test ids and failure lines are printed
verbatim (never read as markup). Errors go to stderr. ``--json`` prints one
JSON document on stdout instead (the human output then goes to stderr); when
``GITHUB_STEP_SUMMARY`` names a file, a Markdown summary is appended to it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from harness import exitcodes
from harness.resources import MissingResource
from harness.verify.progress import SuiteProgress
from harness.verify.runner import ALL_SUITES, DEFAULT_SUITES, RunPlan, pytest_args, run_pytest
from harness.verify.summary import LEVELS, VerifySummary, summarise

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
PROGRESS_EVERY_S = 10.0
"""Without a terminal: a suite's progress line at most this often (and when it finishes)."""


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"orchq: {message}", err=True)
    sys.exit(code)


def _suites(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    unknown = [s for s in names if s not in ALL_SUITES]
    if unknown or not names:
        bad = ", ".join(unknown) or "(none given)"
        raise click.BadParameter(f"unknown suite {bad}; choose from {', '.join(ALL_SUITES)}")
    return names


@click.command("verify")
@click.option(
    "--target",
    default=None,
    metavar="URL",
    envvar="ORCHQ_TARGET",
    help="A live OrchQueue v1 server (env ORCHQ_TARGET); without it, in-process "
    "orchestratord servers (real HTTP on ephemeral ports) are started.",
)
@click.option(
    "--token",
    default=None,
    envvar="ORCHQ_TOKEN",
    help="Bearer token for --target (env ORCHQ_TOKEN).",
)
@click.option(
    "--serve-cmd",
    "serve_cmd",
    default=None,
    metavar="CMD",
    envvar="ORCHQ_SERVE_CMD",
    help="Start the implementation under test with this shell command, once for "
    "each configuration a check needs: {port}, {config} (a configuration file "
    "the harness writes) and {state_dir} (kept across restarts) are filled in "
    "(env ORCHQ_SERVE_CMD).",
)
@click.option(
    "--profile",
    type=click.Choice(["all", "core"]),
    default="all",
    show_default=True,
    envvar="ORCHQ_PROFILE",
    help="The profiles of the spec the target implements: 'core' for a target without "
    "runs (section 12), whose requirements are then reported as not claimed "
    "(env ORCHQ_PROFILE).",
)
@click.option(
    "--suites",
    default=",".join(DEFAULT_SUITES),
    show_default=True,
    help=f"Comma-separated suites out of {', '.join(ALL_SUITES)}.",
)
@click.option(
    "-n",
    "workers",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="xdist worker processes (0: in this process).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("orchq-report"),
    show_default=True,
    help="Where the reports (trace.json, COMPLIANCE.md, report.html, "
    "junit.xml) and pytest.log go, relative to the current folder.",
)
@click.option(
    "--gate",
    type=click.Choice(["must", "should", "none"]),
    default="must",
    show_default=True,
    help="Requirement levels that must be verified by a passing test.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON summary on stdout (the human output goes to stderr).",
)
def verify_command(
    target: str | None,
    token: str | None,
    serve_cmd: str | None,
    profile: str,
    suites: str,
    workers: int,
    report_dir: Path,
    gate: str,
    as_json: bool,
) -> None:
    """Run the packaged conformance suite and print requirements by state.

    \b
    Exit codes:
      0  conformant: every selected suite passed, the gate is satisfied
      1  tests failed
      2  bad command line, or a target that cannot be verified
         (unreachable, wrong token, not OrchQueue v1); pytest: interrupted
      3  pytest internal error
      4  pytest usage error
      5  no tests collected
      6  the gate refused the run (a gated requirement is not verified)
      7  the spec, the requirements index or the installation is broken
    """
    try:
        selected = _suites(suites)
    except click.BadParameter as exc:
        _fail(f"--suites: {exc.message}", exitcodes.USAGE)
    console = Console(file=sys.stderr if as_json else sys.stdout, highlight=False)
    if target is not None and serve_cmd is not None:
        _fail(
            "--target and --serve-cmd exclude each other: certify a running server, or let "
            "orchq start one",
            exitcodes.USAGE,
        )
    if serve_cmd is not None:
        import tempfile

        from harness.verify.preflight import TargetProblem, check_serve_command

        with tempfile.TemporaryDirectory(prefix="orchq-preflight-") as scratch:
            try:
                check_serve_command(serve_cmd, cwd=Path.cwd(), scratch=Path(scratch))
            except TargetProblem as exc:
                _fail(str(exc), exitcodes.USAGE)
        console.print(
            f"orchq: verifying the implementation that `{serve_cmd}` starts (a process for "
            "each configuration a check needs)",
            markup=False,
        )
    elif target is not None:
        from harness.verify.preflight import TargetProblem, check_target

        target = target.rstrip("/")
        try:
            found = check_target(target, token)
        except TargetProblem as exc:
            _fail(str(exc), exitcodes.USAGE)
        console.print(
            f"orchq: verifying {found.url} (pools {', '.join(found.pools)}, "
            f"{found.replicas} replicas)",
            markup=False,
        )
    else:
        console.print("orchq: verifying the embedded orchestratord (in-process, real HTTP)")
    plan = RunPlan(selected, report_dir, gate, workers, target, token, serve_cmd, profile)
    try:
        plan.report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create {plan.report_dir}: {exc.strerror}", exitcodes.USAGE)
    for stale in (plan.trace_json, plan.compliance_md, plan.html, plan.junit_xml):
        stale.unlink(missing_ok=True)  # never show a previous run's results as this one's
    try:
        args = pytest_args(plan)
    except MissingResource as exc:
        _fail(str(exc), exitcodes.SPEC_ERROR)
    code, progress = _run_with_display(console, plan, args)
    summary = summarise(
        _load_trace(plan.trace_json),
        progress,
        code,
        target=target,
        serve_cmd=serve_cmd,
        gate=gate,
        reports={
            "json": plan.trace_json,
            "markdown": plan.compliance_md,
            "html": plan.html,
            "junit": plan.junit_xml,
            "log": plan.log,
        },
    )
    _print(console, summary, plan)
    if as_json:
        click.echo(json.dumps(summary.document(), indent=2, sort_keys=True))
    _append_job_summary(summary)
    sys.exit(summary.exit_code)


def _run_with_display(
    console: Console, plan: RunPlan, args: list[str]
) -> tuple[int, SuiteProgress]:
    if console.is_terminal:
        return _run_with_bars(console, plan, args)
    last: dict[str, float] = {}

    def line(suite: str) -> None:
        done, total = progress.done[suite], progress.totals[suite]
        now = time.monotonic()
        if done < total and now - last.get(suite, 0.0) < PROGRESS_EVERY_S and done:
            return
        last[suite] = now
        failed, skipped = progress.failed[suite], progress.skipped[suite]
        console.print(
            f"orchq: {suite:<12} {done}/{total}"
            + (f", {failed} failed" if failed else "")
            + (f", {skipped} skipped" if skipped else ""),
            markup=False,
        )

    progress = SuiteProgress(on_change=line)
    return run_pytest(args, [progress], plan.log), progress


def _run_with_bars(console: Console, plan: RunPlan, args: list[str]) -> tuple[int, SuiteProgress]:
    bars = Progress(
        TextColumn("[bold]{task.fields[suite]:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )
    ids: dict[str, TaskID] = {}

    def update(suite: str) -> None:
        if suite not in ids:
            ids[suite] = bars.add_task(
                "", suite=escape(suite), status="", total=progress.totals[suite]
            )
        failed, skipped = progress.failed[suite], progress.skipped[suite]
        status = "[red]" + f"{failed} failed" if failed else "[green]ok"
        if skipped:
            status += f" [yellow]{skipped} skipped"
        bars.update(
            ids[suite], completed=progress.done[suite], total=progress.totals[suite], status=status
        )

    progress = SuiteProgress(on_change=update)
    with bars:
        code = run_pytest(args, [progress], plan.log)
    return code, progress


def _load_trace(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _print(console: Console, summary: VerifySummary, plan: RunPlan) -> None:
    """The human summary: tables of plain text (ids and messages are never markup)."""
    if not summary.traced:
        click.echo(
            f"orchq: the run produced no traceability report (pytest exit {summary.exit_code}"
            f"); see {plan.log}",
            err=True,
        )
    if summary.states:
        table = Table(title="Requirements by state")
        table.add_column("state")
        for level in LEVELS:
            table.add_column(level, justify="right")
        table.add_column("total", justify="right")
        for state, row in summary.states.items():
            cells = [Text(str(row.get(level, 0))) for level in LEVELS]
            table.add_row(Text(state), *cells, Text(str(sum(row.values()))))
        console.print(table)
    if summary.unverified:
        console.print(
            f"Gate '{summary.gate}': not verified by a passing conformance test:",
            style="red",
            markup=False,
        )
        for req in summary.unverified:
            console.print(f"  {req['id']} ({req['level']}): {req['state']}", markup=False)
    if summary.failing:
        detail = Table(title="Failing requirements")
        detail.add_column("requirement", no_wrap=True)
        detail.add_column("test", overflow="fold")
        detail.add_column("first line of the failure")
        for req in summary.failing:
            detail.add_row(
                Text(f"{req['id']} ({req['level']})"), Text(req["test"]), Text(req["failure"])
            )
        console.print(detail)
    if summary.failing_tests:
        console.print("Failing tests (citing no requirement):", style="red", markup=False)
        for test in summary.failing_tests:
            console.print(f"  {test['test']}: {test['failure']}", markup=False)
    if summary.reports:
        console.print("Reports:")
        labels = {
            "json": "JSON",
            "markdown": "Markdown",
            "html": "HTML",
            "junit": "JUnit XML",
            "log": "pytest log",
        }
        for kind, path in summary.reports.items():
            console.print(f"  {labels[kind]:<12} {path}", markup=False)
    style = "green" if summary.exit_code == exitcodes.OK else "red"
    console.print(
        f"orchq verify: {summary.verdict} (exit {summary.exit_code})", style=style, markup=False
    )


def _append_job_summary(summary: VerifySummary) -> None:
    """Append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` when it names a file."""
    path = os.environ.get(SUMMARY_ENV, "").strip()
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(summary.markdown())
    except OSError as exc:
        click.echo(f"orchq: cannot append to {SUMMARY_ENV}={path}: {exc.strerror}", err=True)
