"""The consumer pact run under xdist: controller-only clearing, no lost interaction, same bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.pact.cli import CONSUMER_TESTS
from harness.pact.model import PACT_FILE
from harness.pact.pactfiles import dumps, normalise
from harness.pact.plugin import committed_pact_dir

pytestmark = pytest.mark.contract

ROOT = committed_pact_dir().parents[1]


@pytest.mark.slow
def test_two_workers_write_the_committed_pact(tmp_path: Path) -> None:
    out = tmp_path / "pacts"
    out.mkdir()
    stale: dict[str, object] = {
        "consumer": {"name": "orchq-client"},
        "provider": {"name": "orchestratord"},
        "interactions": [{"description": "an interaction from an earlier run"}],
    }
    (out / PACT_FILE).write_text(dumps(stale))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(CONSUMER_TESTS),
            "-n",
            "2",
            "-q",
            "-p",
            "no:cacheprovider",
            "--orch-pact-dir",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    normalise(out / PACT_FILE)
    assert (out / PACT_FILE).read_bytes() == (committed_pact_dir() / PACT_FILE).read_bytes(), (
        "under -n 2 the merged pact must equal the committed one: no interaction lost, "
        "none left over from an earlier run"
    )
