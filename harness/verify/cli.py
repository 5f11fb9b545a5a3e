"""``orchq verify``: certify an OrchQueue v1 implementation with the conformance suite.

Exit codes (``harness.exitcodes``): 0 all selected suites passed and the gate
is satisfied; 1 tests failed; 6 the gate refused the run (a gated requirement
is not verified); 7 the spec or index is broken; 2 a bad command line or a
target that cannot be verified (unreachable, wrong token, not OrchQueue v1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from harness import exitcodes
from harness.verify.gate import OUTSIDE, REMOTE_UNVERIFIABLE, judge
from harness.verify.progress import SuiteProgress
from harness.verify.runner import ALL_SUITES, DEFAULT_SUITES, RunPlan, pytest_args, run_pytest

_STATE_ORDER = (
    "verified",
    "failing",
    "flaky",
    "suspect",
    "partly-skipped",
    "skipped",
    "xfail",
    "untested",
    REMOTE_UNVERIFIABLE,
    OUTSIDE,
)
_FIRST_LINE_MAX = 160
"""Longest failure line shown in the table; pytest.log has the whole message."""
_LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")


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
@click.option("--target", default=None, metavar="URL",
              help="A live OrchQueue v1 server; without it, in-process orchestratord servers "
                   "(real HTTP on ephemeral ports) are started for the run.")  # fmt: skip
@click.option("--token", default=None, envvar="ORCHQ_TOKEN", help="Bearer token for --target.")
@click.option("--suites", default=",".join(DEFAULT_SUITES), show_default=True,
              help=f"Comma-separated suites out of {', '.join(ALL_SUITES)}.")  # fmt: skip
@click.option("-n", "workers", type=click.IntRange(0), default=0, show_default=True,
              help="xdist worker processes (0: in this process).")  # fmt: skip
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("orchq-report"), show_default=True,
              help="Where the reports (trace.json, COMPLIANCE.md, report.html, "
                   "junit.xml) and pytest.log go.")  # fmt: skip
@click.option("--gate", type=click.Choice(["must", "should", "none"]), default="must",
              show_default=True,
              help="Requirement levels that must be verified by a passing test.")  # fmt: skip
def verify_command(
    target: str | None,
    token: str | None,
    suites: str,
    workers: int,
    report_dir: Path,
    gate: str,
) -> None:
    """Run the packaged conformance suite and print requirements by state."""
    try:
        selected = _suites(suites)
    except click.BadParameter as exc:
        _fail(f"--suites: {exc.message}", exitcodes.USAGE)
    console = Console(file=sys.stdout)
    if target is not None:
        from harness.verify.preflight import TargetProblem, check_target

        target = target.rstrip("/")
        try:
            summary = check_target(target, token)
        except TargetProblem as exc:
            _fail(str(exc), exitcodes.USAGE)
        console.print(
            f"orchq: verifying {summary.url} (pools {', '.join(summary.pools)}, "
            f"{summary.replicas} replicas)"
        )
    else:
        console.print("orchq: verifying the embedded orchestratord (in-process, real HTTP)")
    plan = RunPlan(selected, report_dir, gate, workers, target, token)
    try:
        plan.report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create {plan.report_dir}: {exc.strerror}", exitcodes.USAGE)
    for stale in (plan.trace_json, plan.compliance_md, plan.html, plan.junit_xml):
        stale.unlink(missing_ok=True)  # never show a previous run's results as this one's
    code, progress = _run_with_display(console, plan)
    sys.exit(_summarise(console, plan, progress, code))


def _run_with_display(console: Console, plan: RunPlan) -> tuple[int, SuiteProgress]:
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
            ids[suite] = bars.add_task("", suite=suite, status="", total=progress.totals[suite])
        failed, skipped = progress.failed[suite], progress.skipped[suite]
        status = "[red]" + f"{failed} failed" if failed else "[green]ok"
        if skipped:
            status += f" [yellow]{skipped} skipped"
        bars.update(ids[suite], completed=progress.done[suite], total=progress.totals[suite],
                    status=status)  # fmt: skip

    progress = SuiteProgress(on_change=update)
    with bars:
        code = run_pytest(pytest_args(plan), [progress], plan.log)
    return code, progress


def _load_trace(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _summarise(console: Console, plan: RunPlan, progress: SuiteProgress, code: int) -> int:
    """Print the tables; return the command's exit code."""
    trace = _load_trace(plan.trace_json)
    if trace is None:
        console.print(
            f"[red]orchq: the run produced no traceability report (pytest exit {code}); "
            f"see {plan.log}"
        )
        return code if code != exitcodes.OK else exitcodes.SPEC_ERROR
    requirements: list[dict[str, Any]] = trace.get("requirements", [])
    judgement = judge(
        requirements, progress.skip_reasons, gate=plan.gate, live=plan.target is not None
    )
    if code == exitcodes.OK and judgement.violations:
        code = exitcodes.TRACE_VIOLATION
    by_state: dict[str, dict[str, int]] = {}
    for req in requirements:
        category = judgement.category[req["id"]]
        by_state.setdefault(category, {}).setdefault(req["level"], 0)
        by_state[category][req["level"]] += 1
    table = Table(title="Requirements by state")
    table.add_column("state")
    for level in _LEVELS:
        table.add_column(level, justify="right")
    table.add_column("total", justify="right")
    for state in sorted(by_state, key=lambda s: (*_STATE_ORDER, s).index(s)):
        row = by_state[state]
        table.add_row(state, *(str(row.get(lv, 0)) for lv in _LEVELS), str(sum(row.values())))
    console.print(table)

    failing = [r for r in requirements if r["state"] in ("failing", "flaky")]
    unverified = [r for r in judgement.violations if r not in failing]
    if unverified:
        console.print(f"[red]Gate '{plan.gate}': not verified by a passing conformance test:")
        for req in unverified:
            console.print(f"  {req['id']} ({req['level']}): {req['state']}")
    if failing:
        detail = Table(title="Failing requirements")
        detail.add_column("requirement", no_wrap=True)
        detail.add_column("test", overflow="fold")
        detail.add_column("first line of the failure")
        for req in failing:
            bad = [t for t in req.get("tests", []) if t.get("outcome") == "failed"]
            nodeid = bad[0]["nodeid"] if bad else req["tests"][0]["nodeid"]
            first = progress.failures.get(nodeid)
            line = first.first_line if first else ""
            if len(line) > _FIRST_LINE_MAX:
                line = line[: _FIRST_LINE_MAX - 1] + "…"
            detail.add_row(f"{req['id']} ({req['level']})", nodeid, line)
        console.print(detail)
    elif progress.failures:
        console.print("[red]Failing tests (citing no requirement):")
        for failure in progress.failures.values():
            console.print(f"  {failure.nodeid}: {failure.first_line}")

    console.print("Reports:")
    for label, path in (
        ("JSON", plan.trace_json),
        ("Markdown", plan.compliance_md),
        ("HTML", plan.html),
        ("JUnit XML", plan.junit_xml),
        ("pytest log", plan.log),
    ):
        if path.exists():
            console.print(f"  {label:<12} {path}")
    verdict = {
        exitcodes.OK: "[green]conformant",
        exitcodes.TESTS_FAILED: "[red]tests failed",
        exitcodes.TRACE_VIOLATION: f"[red]gate '{plan.gate}' refused the run",
        exitcodes.SPEC_ERROR: "[red]spec or configuration error",
    }.get(code, f"[red]pytest exit {code}")
    console.print(f"orchq verify: {verdict} (exit {code})")
    return code
