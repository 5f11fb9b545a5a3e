"""``orchq determinism run``: exit 0 on a healthy server, 1 on drift, 2 when unreachable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main
from harness.plugin.target import ServeFactory

NONDETERMINISTIC_POOLS = [
    {
        "pool_id": "default",
        "replicas": [
            {"replica_id": "r1", "faults": {"nondeterministic": True}},
            {"replica_id": "r2"},
        ],
    }
]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["determinism", "run", *args])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_healthy_target_exits_0_with_tables(orch_serve: ServeFactory) -> None:
    target = orch_serve()
    code, out, err = invoke("--seeds", "8", "--target", target.url)
    assert code == 0, err
    assert "unique outputs per seed" in out and "per replica" in out
    assert "8 seeds x 2 replicas x 32 tokens" in out
    assert "deterministic" in err


def test_nondeterministic_replica_exits_1_naming_orch_0114(orch_serve: ServeFactory) -> None:
    target = orch_serve(pools=NONDETERMINISTIC_POOLS)
    code, out, err = invoke("--seeds", "8", "--target", target.url)
    assert code == 1
    assert "ORCH-0114" in err
    assert "r1" in out


def test_single_ready_replica_cannot_verify_two(orch_serve: ServeFactory) -> None:
    target = orch_serve(pools=[{"pool_id": "default", "replicas": [{"replica_id": "solo"}]}])
    code, _, err = invoke("--seeds", "4", "--target", target.url)
    assert code == 1
    assert "the pool has 1 ready replica(s) (solo); 2 needed" in err


def test_unreachable_target_is_one_line_exit_2() -> None:
    code, out, err = invoke("--target", "http://127.0.0.1:9")
    assert code == 2
    assert err.startswith("orchq: cannot reach orchestrator at http://127.0.0.1:9")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_wrong_token_is_one_line_exit_2(orch_serve: ServeFactory) -> None:
    target = orch_serve(auth_token="s3cret")
    code, _, err = invoke("--seeds", "2", "--target", target.url, "--token", "wrong")
    assert code == 2
    assert "UNAUTHORIZED" in err
    assert len(err.strip().splitlines()) == 1


def test_embedded_default_writes_a_byte_stable_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "snap" / "mock.json"
    code, _, err = invoke("--seeds", "4", "--snapshot-write", str(path))
    assert code == 0, err
    assert "embedded orchestratord on http://127.0.0.1:" in err
    first = path.read_bytes()
    assert b'"engine_version": "mock-1"' in first
    code, _, err = invoke("--seeds", "4", "--snapshot-write", str(path))
    assert code == 0, err
    assert "unchanged" in err
    assert path.read_bytes() == first


def test_bad_embedded_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("pools: [{pool_id: default, replicas: [{replica_id: r1, bogus: 1}]}]\n")
    code, _, err = invoke("--config", str(config))
    assert code == 2
    assert "bogus" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_orchq_serve_with_a_fault_config_is_caught(tmp_path: Path) -> None:
    """The user journey: ``orchq serve --config faulty.yaml``, then the probe at its URL."""
    config = tmp_path / "faulty.yaml"
    config.write_text(yaml.safe_dump({"pools": NONDETERMINISTIC_POOLS}), encoding="utf-8")
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "serve",
            "--port",
            "0",
            "--config",
            str(config),
            "--db",
            str(tmp_path / "orchq.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert "serving OrchQueue v1 on " in line, line
        url = line.split(" on ", 1)[1].split()[0]
        probe = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "determinism",
                "run",
                "--seeds",
                "8",
                "--target",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    assert probe.returncode == 1, probe.stderr
    assert "ORCH-0114" in probe.stderr
    assert "Traceback" not in probe.stderr
