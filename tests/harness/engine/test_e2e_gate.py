"""Self-tests of the real-engine gate (``harness/conformance/test_e2e.py``) without a model.

The gate is run in a subprocess (pytester) with ``ORCHQ_E2E_MODEL`` naming a fake
model factory: a deterministic fake passes, broken engines fail naming the ORCH ID.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.conformance import test_e2e as gate
from harness.engine.server import EngineThread
from tests.harness.engine.fakes import FakeModel

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[3]
FAKES = "tests.harness.engine.fakes"


def run_gate(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    model: str | None,
    *args: str,
    urls: str = "",
) -> pytest.RunResult:
    """The gate in a subprocess: skipped (``None``), on fake engines it starts, or on
    running engines (``"external"`` with ``urls``)."""
    monkeypatch.delenv("ORCHQ_E2E_ENGINE_URLS", raising=False)
    monkeypatch.delenv("ORCHQ_E2E_ENGINE_MODEL", raising=False)
    if model is None:
        monkeypatch.delenv("ORCHQ_REAL_ENGINE", raising=False)
    elif model == "external":
        monkeypatch.setenv("ORCHQ_REAL_ENGINE", "1")
        monkeypatch.setenv("ORCHQ_E2E_ENGINE_URLS", urls)
    else:
        monkeypatch.setenv("ORCHQ_REAL_ENGINE", "1")
        monkeypatch.setenv("ORCHQ_E2E_MODEL", f"{FAKES}:{model}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the engine subprocesses import the fakes
    pytester.makefile(".ini", pytest="[pytest]\n")
    return pytester.runpytest_subprocess(
        "--pyargs",
        "harness.conformance.test_e2e",
        "--rootdir",
        str(pytester.path),
        "-c",
        str(pytester.path / "pytest.ini"),
        "--orch-index",
        str(REPO / "requirements" / "index.yaml"),
        "-p",
        "no:cacheprovider",
        "-rs",
        *args,
    )


@pytest.mark.slow
def test_gate_is_skipped_without_orchq_real_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(pytester, monkeypatch, None)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*ORCHQ_REAL_ENGINE=1*"])


@pytest.mark.slow
def test_gate_passes_its_determinism_check_on_a_deterministic_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(pytester, monkeypatch, "make_fake", "-k", "byte_exact")
    result.assert_outcomes(passed=1, deselected=1)


@pytest.mark.slow
def test_gate_fails_naming_orch_0114_when_replicas_sample_differently(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(pytester, monkeypatch, "make_nondeterministic", "-k", "byte_exact")
    result.assert_outcomes(failed=1, deselected=1)
    assert "ORCH-0114" in result.stdout.str(), "the gate did not name ORCH-0114"


@pytest.mark.slow
def test_gate_fails_naming_orch_0044_when_the_engine_ignores_the_seed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(pytester, monkeypatch, "make_seedless", "-k", "byte_exact")
    result.assert_outcomes(failed=1, deselected=1)
    assert "ORCH-0044" in result.stdout.str(), "the gate did not name ORCH-0044"


@pytest.mark.slow
def test_gate_fails_clearly_when_the_engine_cannot_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(pytester, monkeypatch, "no_such_factory", "-k", "byte_exact")
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(["*did not start: orchq engine: cannot load model factory*"])


@pytest.mark.slow
def test_gate_runs_against_already_running_engines_given_by_url(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EngineThread(FakeModel()) as one, EngineThread(FakeModel()) as two:
        urls = f"{one.url},{two.url}"
        result = run_gate(pytester, monkeypatch, "external", "-k", "byte_exact", urls=urls)
    result.assert_outcomes(passed=1, deselected=1)


def test_gate_refuses_a_single_engine_url(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_gate(
        pytester, monkeypatch, "external", "-k", "byte_exact", urls="http://127.0.0.1:9"
    )
    result.assert_outcomes(errors=1, deselected=1)
    result.stdout.fnmatch_lines(["*ORCHQ_E2E_ENGINE_URLS needs 2 URLs*"])


def test_anti_cheat_finds_the_nonce_in_fixture_folders(tmp_path: Path) -> None:
    (tmp_path / "snapshots" / "deep").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "snapshots" / "deep" / "a.json").write_text('{"prompt": "x n-123 y"}')
    (tmp_path / "docs" / "b.md").write_text("n-123")  # not a fixture folder
    assert gate.nonce_files(tmp_path, "n-123") == ["snapshots/deep/a.json"]
    assert gate.nonce_files(tmp_path, "n-456") == []


def test_first_difference_names_the_token() -> None:
    assert gate.first_difference([("a", 1), ("b", 2)], [("a", 1), ("c", 3)]) == (
        "token 1: ('b', 2) vs ('c', 3)"
    )
    assert gate.first_difference([("a", 1)], [("a", 1), ("b", 2)]) == "lengths 1 vs 2"
