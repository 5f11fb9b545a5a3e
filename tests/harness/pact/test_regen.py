"""``orchq pact regen --check``: a stale committed pact is detected and named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.pact.model import PACT_FILE
from harness.pact.pactfiles import dumps, load, write_atomic
from harness.pact.plugin import committed_pact_dir

pytestmark = pytest.mark.contract


def _orchq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.slow
def test_check_names_a_stale_pact_and_regen_repairs_it(tmp_path: Path) -> None:
    pacts = tmp_path / "pacts"
    shutil.copytree(committed_pact_dir(), pacts)
    data = load(pacts / PACT_FILE)
    data["interactions"] = data["interactions"][1:]  # an interaction the consumer still records
    write_atomic(pacts / PACT_FILE, dumps(data))

    stale = _orchq("pact", "regen", "--check", "--pacts", str(pacts))
    assert stale.returncode == 1, stale.stderr
    assert f"{PACT_FILE} is stale: run `orchq pact regen`" in stale.stderr
    assert "Traceback" not in stale.stderr

    fixed = _orchq("pact", "regen", "--pacts", str(pacts))
    assert fixed.returncode == 0, fixed.stderr
    assert (pacts / PACT_FILE).read_bytes() == (committed_pact_dir() / PACT_FILE).read_bytes(), (
        "regenerating must reproduce the committed pact byte for byte"
    )
