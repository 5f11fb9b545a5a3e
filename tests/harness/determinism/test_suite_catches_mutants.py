"""Self-tests: the packaged determinism suite fails on broken orchestrators, naming the ORCH ID.

Each test starts a target (a mutant through a fault knob, or the healthy default)
and runs ``harness.conformance.test_determinism`` against it in a pytest
subprocess, with its own root directory so snapshots are read from (and written
to) a private ``snapshots/`` folder, never the repository's.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.plugin.target import LIVE_TARGET_SKIP, ServeFactory
from orchestrator.config import ReplicaConfig
from orchestrator.engines import build_engine
from orchestrator.engines.base import Engine
from tests.harness.determinism.mutants import DriftedEngine

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[3]
SNAPSHOT = Path(
    "snapshots/conformance/test_determinism/test_tokens_match_the_engine_snapshot[mock@mock-1].json"
)
MODULE = "harness.conformance.test_determinism"


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs must not inherit ``PYTEST_XDIST_WORKER`` from an outer ``-n 2`` worker:
    syrupy reads it from the environment and, believing itself a worker, skips its
    report and the unused-snapshot check."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def run_suite(
    pytester: pytest.Pytester, *args: str, subprocess: bool = False, modules: tuple[str, ...] = ()
) -> pytest.RunResult:
    """The conformance module (and ``modules``) rooted at ``pytester.path`` (in-process
    unless ``subprocess``)."""
    pytester.makefile(".ini", pytest="[pytest]\n")
    argv = [
        "--pyargs", MODULE, *modules, "--rootdir", str(pytester.path),
        "-c", str(pytester.path / "pytest.ini"),
        "--orch-index", str(REPO / "requirements" / "index.yaml"),
        "--orch-snapshot-dir", str(pytester.path / "snapshots"),
        "-p", "no:cacheprovider", *args,
    ]  # fmt: skip
    if subprocess:
        return pytester.runpytest_subprocess(*argv)
    return pytester.runpytest_inprocess(*argv)


def expect(result: pytest.RunResult, **outcomes: int) -> str:
    """Assert the outcome counts (absent = 0), showing the run's output if they differ."""
    out = result.stdout.str()
    got = result.parseoutcomes()
    kinds = ("passed", "failed", "skipped", "errors", "xfailed", "xpassed")
    counts = {k: got.get(k, 0) for k in kinds}
    assert counts == {k: outcomes.get(k, 0) for k in kinds}, out[-4000:]
    return out


def install_snapshot(pytester: pytest.Pytester) -> Path:
    """Copy the committed mock snapshot into the subprocess's snapshot folder."""
    target = pytester.path / SNAPSHOT
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / SNAPSHOT, target)
    return target


def test_committed_snapshot_exists() -> None:
    document = json.loads((REPO / SNAPSHOT).read_text(encoding="utf-8"))
    assert (document["engine"], document["engine_version"]) == ("mock", "mock-1")
    assert all(len(case["token_ids"]) == 32 for case in document["cases"])


@pytest.mark.slow
def test_nondeterministic_replica_fails_naming_orch_0114(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    mutant = orch_serve(
        pools=[
            {
                "pool_id": "default",
                "replicas": [
                    {"replica_id": "r1", "faults": {"nondeterministic": True}},
                    {"replica_id": "r2"},
                ],
            }
        ]
    )
    result = run_suite(pytester, "--orch-url", mutant.url, "-k", "byte_exact or concurrency")
    expect(result, failed=2)
    out = result.stdout.str()
    assert "ORCH-0114: a strict task's tokens must be the same on every replica" in out
    assert "ORCH-0115" in out
    assert "unique outputs per seed:" in out  # the per-seed table is printed on failure
    row = re.search(r"^E?\s*r1\s+yes\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
    assert row, "r1 has a row in the per-replica table"
    runs, seeds, drifting = map(int, row.groups())
    # Whether r1 runs a seed twice depends on scheduling (a sweep that spreads
    # every seed once over each replica is fine); when it did, it drifted.
    if runs > seeds:
        assert drifting > 0, "r1 ran seeds twice and is not shown drifting"


def test_drifted_snapshot_fails_naming_orch_0113(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    path = install_snapshot(pytester)
    document = json.loads(path.read_text(encoding="utf-8"))
    case = document["cases"][3]
    case["texts"][5] = " drifted"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    target = orch_serve()
    result = run_suite(pytester, "--orch-url", target.url, "-k", "snapshot")
    expect(result, failed=1)
    out = result.stdout.str()
    assert "ORCH-0113: the strict tokens of mock@mock-1 drifted from the snapshot" in out
    assert f"seed {case['seed']} (profile {case['sampler_profile_version']}" in out
    assert "token 5 stored" in out and "' drifted'" in out


def test_an_engine_whose_output_changed_fails_the_snapshot_naming_orch_0113(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    install_snapshot(pytester)

    def factory(replica: ReplicaConfig) -> Engine:
        return DriftedEngine(build_engine(replica))

    target = orch_serve(engine_factory=factory)
    result = run_suite(pytester, "--orch-url", target.url, "-k", "snapshot or byte_exact")
    out = expect(result, passed=1, failed=1)  # replicas still agree with each other
    assert "ORCH-0113: the strict tokens of mock@mock-1 drifted from the snapshot" in out
    assert "token 7 stored" in out and "' upgraded'" in out


@pytest.mark.slow
def test_missing_snapshot_fails_and_update_records_it_byte_stably(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    target = orch_serve()
    missing = run_suite(pytester, "--orch-url", target.url, "-k", "snapshot")
    expect(missing, failed=1)
    assert "no snapshot stored yet" in missing.stdout.str()
    assert "--snapshot-update" in missing.stdout.str()

    updated = run_suite(pytester, "--orch-url", target.url, "-k", "snapshot", "--snapshot-update")
    expect(updated, passed=1)
    written = (pytester.path / SNAPSHOT).read_bytes()
    compared = json.loads(written)
    committed = json.loads((REPO / SNAPSHOT).read_bytes())
    del compared["timing"], committed["timing"]
    assert compared == committed, "the recorded snapshot equals the committed one"

    # Timing is recorded but never compared: other timings pass, and nothing is rewritten.
    document = json.loads(written)
    document["timing"]["cases_ms"] = [99999.0] * len(document["cases"])
    slow = json.dumps(document, indent=2, sort_keys=True) + "\n"
    (pytester.path / SNAPSHOT).write_text(slow, encoding="utf-8")
    again = run_suite(pytester, "--orch-url", target.url, "-k", "snapshot", "--snapshot-update")
    expect(again, passed=1)
    assert (pytester.path / SNAPSHOT).read_text(encoding="utf-8") == slow


@pytest.mark.slow
def test_healthy_default_passes_in_process_with_snapshot_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    install_snapshot(pytester)
    result = run_suite(
        pytester, "-n", "2", "-k", "byte_exact or restart or snapshot", subprocess=True
    )
    expect(result, passed=3)
    assert "1 snapshot passed" in result.stdout.str()


def test_healthy_live_target_passes_and_in_process_checks_skip(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    mine = install_snapshot(pytester)
    # Another engine's snapshot: this run cannot judge it, so it is neither unused nor deleted.
    other = mine.with_name("test_tokens_match_the_engine_snapshot[openai@smollm2-abc].json")
    other.write_text('{"engine": "openai"}\n', encoding="utf-8")
    target = orch_serve(auth_token="det-token")  # every check, raw SSE reads too, sends it
    result = run_suite(pytester, "--orch-url", target.url, "--orch-token", "det-token", "-rs")
    expect(result, passed=7, skipped=2)
    assert result.ret == 0
    out = result.stdout.str()
    assert out.count(LIVE_TARGET_SKIP) == 2
    assert "1 snapshot passed" in out and "unused" not in out
    updated = run_suite(
        pytester, "--orch-url", target.url, "--orch-token", "det-token", "--snapshot-update"
    )
    expect(updated, passed=7, skipped=2)
    assert other.exists()


@pytest.mark.slow
def test_another_engines_snapshot_is_not_unused_beside_another_snapshot_module(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    """Under xdist a worker that ran only the API-shape tests also discovers the
    determinism folder, through the shapes' extension: that one must skip engine-keyed
    files too."""
    mine = install_snapshot(pytester)
    other = mine.with_name("test_tokens_match_the_engine_snapshot[openai@smollm2-abc].json")
    other.write_text('{"engine": "openai"}\n', encoding="utf-8")
    shapes = Path("snapshots/conformance/test_contract_shapes")
    shutil.copytree(REPO / shapes, pytester.path / shapes)
    target = orch_serve()
    result = run_suite(
        pytester,
        "--orch-url",
        target.url,
        "-n",
        "2",
        modules=("harness.conformance.test_contract_shapes",),
        subprocess=True,
    )
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    assert not re.search(r"snapshots? unused", out), out[-3000:]


def test_a_stray_file_in_the_snapshot_folder_is_still_reported_unused(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    mine = install_snapshot(pytester)
    stray = mine.with_name("test_deleted_long_ago.json")
    stray.write_text("{}\n", encoding="utf-8")
    target = orch_serve()
    result = run_suite(pytester, "--orch-url", target.url)
    expect(result, passed=7, skipped=2)
    assert result.ret == 1
    assert "1 snapshot unused" in result.stdout.str()
