"""``orchq runs``: one line and an exit code for every outcome, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from harness import exitcodes
from harness.cli import main
from orchestrator.client import OrchClient
from tests.support import ServeFactory

FAILING = {
    "name": "failing",
    "version": "1",
    "inputs": {"text": {"type": "string"}},
    "steps": [
        {"id": "empty", "prompt": "{{ inputs.text }}"},
        {"id": "after", "prompt": "then", "depends_on": ["empty"]},
    ],
}


def _config(tmp_path: Path) -> Path:
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "failing.yaml").write_text(yaml.safe_dump(FAILING), encoding="utf-8")
    config = tmp_path / "orchq.yaml"
    config.write_text(yaml.safe_dump({"definitions_dir": "definitions"}), encoding="utf-8")
    return config


def test_a_failed_run_prints_its_steps_and_exits_1(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    result = CliRunner().invoke(
        main, ["runs", "start", "failing", "--config", config, "--input", "text="]
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("empty  failed     INVALID_PARAMS: the rendered prompt")
    assert lines[1] == "after  skipped"
    assert "failed: failing@1" in result.stderr and "Traceback" not in result.output


def test_bad_command_lines_are_one_line_and_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    definition = tmp_path / "d.yaml"
    definition.write_text(yaml.safe_dump(FAILING), encoding="utf-8")
    untargeted = runner.invoke(main, ["runs", "register", str(definition)])
    assert untargeted.exit_code == 2
    assert untargeted.stderr.strip().startswith("orchq: runs register needs --target")
    broken = tmp_path / "broken.yaml"
    broken.write_text(": [", encoding="utf-8")
    unreadable = runner.invoke(
        main, ["runs", "register", str(broken), "--target", "http://127.0.0.1:9"]
    )
    assert unreadable.exit_code == 2 and "not a definition document" in unreadable.stderr
    bad_input = runner.invoke(main, ["runs", "start", "x", "--input", "novalue"])
    assert bad_input.exit_code == 2 and "is not KEY=VALUE" in bad_input.stderr
    unreachable = runner.invoke(
        main, ["runs", "start", "x", "--target", "http://127.0.0.1:9", "--input", "a=1"]
    )
    assert unreachable.exit_code == 2, unreachable.output
    assert len(unreachable.stderr.strip().splitlines()) == 1


GATED = {
    "name": "gated",
    "version": "1",
    "steps": [{"id": "gate", "prompt": "go", "checkpoint": {"when": "before"}}],
}


def test_a_run_paused_on_an_embedded_server_exits_1_saying_why(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "definitions" / "gated.yaml").write_text(yaml.safe_dump(GATED), encoding="utf-8")
    result = CliRunner().invoke(main, ["runs", "start", "gated", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "gate  waiting_approval",
        "checkpoint gate.before.1 (continue|abort)",
    ]
    assert "an embedded server cannot wait for a decision" in result.stderr
    assert "Traceback" not in result.output


def test_deciding_on_a_server_names_the_run_when_the_id_is_ambiguous(serve: ServeFactory) -> None:
    server = serve()
    runner = CliRunner()
    with OrchClient(server.url) as client:
        client.register_definition(GATED)
        session = client.create_session().session_id
        first = client.create_run(session, "gated", "1").run_id
        client.create_run(session, "gated", "1")
    target = ["--target", server.url]
    listed = runner.invoke(main, ["runs", "approvals", *target])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 2, listed.output
    decide = ["runs", "decide", "gate.before.1", "continue", "--by", "me", *target]
    ambiguous = runner.invoke(main, decide)
    assert ambiguous.exit_code == 2
    assert "2 runs wait at checkpoint 'gate.before.1': name one with --run" in ambiguous.stderr
    decided = runner.invoke(main, [*decide, "--run", first])
    assert decided.exit_code == 0, decided.output
    assert decided.stdout.startswith('gate  succeeded  "'), decided.output
    assert "completed: gated@1" in decided.stderr
    again = runner.invoke(main, [*decide, "--run", first])
    assert again.exit_code == 1 and again.stderr.startswith("orchq: CONFLICT (HTTP 409)")
    untargeted = runner.invoke(main, ["runs", "decide", "gate.before.1", "abort", "--by", "me"])
    assert untargeted.exit_code == 2 and "needs --target" in untargeted.stderr


def test_a_folder_child_registered_nowhere_ends_the_command_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "definitions"
    folder.mkdir()
    parent = {
        "name": "report",
        "version": "1",
        "steps": [{"id": "fan", "run": {"definition": "section", "version": "3"}}],
    }
    (folder / "report.yaml").write_text(yaml.safe_dump(parent), encoding="utf-8")
    config = tmp_path / "orchq.yaml"
    config.write_text(yaml.safe_dump({"definitions_dir": "definitions"}), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "harness", "runs", "start", "report", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == exitcodes.USAGE, result
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"orchq: bad config: {folder / 'report.yaml'}: steps[0].run.version: step 'fan' "
        "runs section@3, which is not registered"
    ]
