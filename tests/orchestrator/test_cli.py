"""The orchestrator's commands as a user runs them: real processes, exit codes, one-line errors.

Spec: ORCH-0148, ORCH-0150.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import exitcodes
from orchestrator.api.openapi import DEFAULT_PATH, openapi_document, render

REPO = Path(__file__).resolve().parents[2]


def orchq(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert text in lines[0]


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("pools: [{pool_id: x}]\n", "pools[0].replicas: required key is missing"),
        ("pools:\n  - pool_id: x\n    replicas: [{replica_id: r, engine: gpu}]\n", "engine"),
        ("pools: [\n", "invalid YAML at line"),
        ("nonsense_key: 1\n", "nonsense_key: unknown key"),
        ("database: 5\n", "database: Input should be a valid string"),
    ],
)
@pytest.mark.req("ORCH-0148")
def test_serve_refuses_a_bad_config_with_one_line_and_exit_2(
    tmp_path: Path, content: str, text: str
) -> None:
    config = tmp_path / "orchq.yaml"
    config.write_text(content, encoding="utf-8")
    assert_one_line_error(orchq("serve", "--config", str(config)), exitcodes.USAGE, text)


def test_serve_names_a_missing_config_file(tmp_path: Path) -> None:
    result = orchq("serve", "--config", str(tmp_path / "nope.yaml"))
    assert_one_line_error(result, exitcodes.USAGE, "nope.yaml: config file not found")


@pytest.mark.req("ORCH-0315", "ORCH-0483")
def test_serve_names_a_folder_child_that_is_registered_nowhere(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    parent = {
        "name": "report",
        "version": "1",
        "steps": [
            {"id": "draft", "prompt": "draft"},
            {"id": "fan", "run": {"definition": "section", "version": "3"}},
        ],
    }
    (folder / "report.yaml").write_text(yaml.safe_dump(parent), encoding="utf-8")
    config = tmp_path / "orchq.yaml"
    config.write_text(yaml.safe_dump({"definitions_dir": "defs"}), encoding="utf-8")
    result = orchq("serve", "--config", str(config), "--db", str(tmp_path / "o.db"), "--port", "0")
    assert_one_line_error(result, exitcodes.USAGE, "report.yaml")
    assert "steps[1].run" in result.stderr and "section@3" in result.stderr


def test_serve_refuses_an_unusable_database(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-db"
    bogus.write_bytes(b"garbage" * 200)
    result = orchq("serve", "--db", str(bogus), "--port", "0")
    assert_one_line_error(result, exitcodes.USAGE, "cannot open database")


def test_serve_refuses_an_address_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = orchq("serve", "--port", str(port), "--db", str(tmp_path / "orchq.db"))
    assert_one_line_error(result, exitcodes.USAGE, f"cannot listen on 127.0.0.1:{port}")
    assert "in use" in result.stderr


def test_run_streams_a_task_on_the_embedded_default() -> None:
    result = orchq("run", "Write a haiku about queues", "--seed", "7", "--max-tokens", "12")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 6
    assert "completed: 12 tokens, seed 7, strict" in result.stderr
    again = orchq("run", "Write a haiku about queues", "--seed", "7", "--max-tokens", "12")
    assert again.stdout == result.stdout


def test_run_reports_an_unreachable_server_in_one_line() -> None:
    result = orchq("run", "hi", "--target", "http://127.0.0.1:9")
    assert_one_line_error(result, exitcodes.USAGE, "cannot reach orchestrator")


def test_run_strict_needs_a_seed() -> None:
    assert_one_line_error(orchq("run", "hi", "--strict"), exitcodes.USAGE, "--strict needs --seed")


def test_the_committed_openapi_document_is_current() -> None:
    committed = (REPO / DEFAULT_PATH).read_text(encoding="utf-8")
    assert committed == render(openapi_document())


def test_openapi_regen_check_detects_a_stale_document(tmp_path: Path) -> None:
    target = tmp_path / "openapi.yaml"
    missing = orchq("openapi", "regen", "--check", "--output", str(target))
    assert_one_line_error(missing, exitcodes.STALE, "is missing")
    assert orchq("openapi", "regen", "--output", str(target)).returncode == 0
    first = target.read_bytes()
    assert orchq("openapi", "regen", "--output", str(target)).returncode == 0
    assert target.read_bytes() == first
    assert orchq("openapi", "regen", "--check", "--output", str(target)).returncode == 0
    target.write_text(first.decode().replace("OrchQueue v1", "Drifted"), encoding="utf-8")
    assert_one_line_error(
        orchq("openapi", "regen", "--check", "--output", str(target)), exitcodes.STALE, "is stale"
    )


@pytest.mark.req("ORCH-0150")
def test_serve_listens_on_loopback_port_8080_by_default() -> None:
    from harness.orchestrator_cli import serve_command

    defaults = {param.name: param.default for param in serve_command.params}
    assert (defaults["host"], defaults["port"]) == ("127.0.0.1", 8080), defaults
    help_text = orchq("serve", "--help").stdout
    assert "127.0.0.1" in help_text and "8080" in help_text
