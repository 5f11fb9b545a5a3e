"""The HTML report in a real browser: headless Chromium shows every row, and the filter
from the URL fragment hides exactly the rows that do not match."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness.trace.report_helpers import run_trace, synthetic_trace

_CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    _CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)

_ROW = re.compile(
    r'<tr id="(ORCH-\d+)" class="[^"]*" data-state="([^"]+)" data-level="([^"]+)"'
    r' data-section="([^"]*)"( hidden="")?>'
)


def _dump_dom(tmp_path: Path, url: str) -> str:
    assert _CHROMIUM is not None
    profile = tmp_path / "profile"
    result = subprocess.run(
        [
            _CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def report(tmp_path: Path) -> Path:
    trace = synthetic_trace(
        {
            "t.py::a": (("ORCH-0001",), "passed"),
            "t.py::b": (("ORCH-0002",), "failed"),
            "t.py::c": (("ORCH-0003",), "failed"),
        },
        levels={1: "MUST", 2: "MUST", 3: "SHOULD", 4: "MAY"},
    )
    (tmp_path / "t.json").write_text(trace.render(), encoding="utf-8")
    html = tmp_path / "report.html"
    assert run_trace("report", str(tmp_path / "t.json"), "--html", str(html)).exit_code == 0
    return html


@pytest.mark.slow
def test_chromium_shows_every_row_and_the_fragment_filters(report: Path, tmp_path: Path) -> None:
    rows = _ROW.findall(_dump_dom(tmp_path, report.as_uri()))
    assert [(r[0], r[1], bool(r[4])) for r in rows] == [
        ("ORCH-0001", "verified", False),
        ("ORCH-0002", "failing", False),
        ("ORCH-0003", "failing", False),
        ("ORCH-0004", "untested", False),
    ]
    dom = _dump_dom(tmp_path, report.as_uri() + "#state=failing&level=MUST")
    visible = [r[0] for r in _ROW.findall(dom) if not r[4]]
    assert visible == ["ORCH-0002"]
    assert "1 of 4 shown" in dom
    dom = _dump_dom(tmp_path, report.as_uri() + "#section=1+Basics&state=failing")
    assert [r[0] for r in _ROW.findall(dom) if not r[4]] == ["ORCH-0003"]
