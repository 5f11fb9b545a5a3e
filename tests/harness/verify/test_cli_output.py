"""What ``orchq verify`` prints: verbatim ids, progress in a CI log, --json, the job summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness.verify.cli import _print
from harness.verify.runner import RunPlan
from harness.verify.summary import VerifySummary

NODEID = (
    "harness/conformance/test_contract.py::test_operation_meets_contract[createTask:POST /v1/tasks]"
)


def test_test_ids_and_failure_lines_are_printed_verbatim(tmp_path: Path) -> None:
    """Brackets in a parametrized id or a message are text, never rich markup."""
    summary = VerifySummary(1, None, "must")
    summary.states = {"failing": {"MUST": 1}}
    summary.failing = [
        {
            "id": "ORCH-0001",
            "level": "MUST",
            "state": "failing",
            "test": NODEID,
            "failure": "AssertionError: [bold]202[/bold] expected, got [red]500",
        },
    ]
    summary.failing_tests = [{"test": "t.py::test_x[a:b]", "failure": "boom [x]"}]
    console = Console(record=True, width=400, file=open(os.devnull, "w"))  # noqa: SIM115
    _print(console, summary, RunPlan(("contract",), tmp_path, "must", 0))
    text = console.export_text()
    assert NODEID in text
    assert "AssertionError: [bold]202[/bold] expected, got [red]500" in text
    assert "t.py::test_x[a:b]: boom [x]" in text
    assert "orchq verify: tests failed (exit 1)" in text


@pytest.mark.slow
def test_a_ci_run_shows_progress_and_a_json_summary_and_fills_the_job_summary(
    tmp_path: Path,
) -> None:
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n", encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ORCHQ_"))},
        "GITHUB_STEP_SUMMARY": str(step_summary),
        "PACT_DO_NOT_TRACK": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "harness", "verify", "--suites", "metrics", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)  # stdout holds the JSON alone
    assert document["verdict"] == "conformant" and document["exit_code"] == 0
    assert document["suites"]["metrics"]["done"] == document["suites"]["metrics"]["total"] > 0
    assert document["reports"]["json"] == "orchq-report/trace.json"
    lines = done.stderr.splitlines()  # not a terminal: plain progress lines, no bars
    assert any(line.startswith("orchq: metrics") and "/" in line for line in lines), done.stderr
    assert "orchq verify: conformant (exit 0)" in done.stderr
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.startswith("earlier step\n## orchq verify: conformant (exit 0)\n"), summary
    assert "| verified |" in summary
