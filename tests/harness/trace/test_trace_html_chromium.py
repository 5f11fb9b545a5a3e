"""The HTML report in a real browser: headless Chromium shows the chart, the failing
requirements, every row and the evidence columns; the filter from the URL fragment hides
exactly the rows that do not match; the screenshot shows the chart's colours in the
proportions of the states (compared structurally, never pixel by pixel)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from harness.trace.html_report import STATE_COLOURS
from harness.trace.report import CaseInfo
from tests.harness.trace.report_helpers import run_trace, synthetic_trace

_CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    _CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)

_ROW = re.compile(
    r'<tr id="(ORCH-\d+)" class="[^"]*" data-state="([^"]+)" data-level="([^"]+)"'
    r' data-section="([^"]*)" data-evidence="([^"]*)"( hidden="")?>'
)
_SEGMENT = re.compile(r'<rect class="seg"[^>]* data-state="([^"]+)" data-count="(\d+)"')

_BROWSER = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--virtual-time-budget=2000",
]


def _chromium(tmp_path: Path, *args: str) -> str:
    assert _CHROMIUM is not None
    result = subprocess.run(
        [_CHROMIUM, *_BROWSER, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _dump_dom(tmp_path: Path, url: str) -> str:
    return _chromium(tmp_path, "--dump-dom", url)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    trace = synthetic_trace(
        {
            "t.py::a": (("ORCH-0001",), "passed"),
            "t.py::b": (("ORCH-0002",), "failed"),
            "t.py::c": (("ORCH-0003",), "failed"),
            "t.py::d": (("ORCH-0005",), "passed"),
        },
        levels={1: "MUST", 2: "MUST", 3: "SHOULD", 4: "MAY", 5: "MUST", 6: "MUST"},
    )
    trace.cases.update(
        {
            "t.py::a": CaseInfo("cdc", "t.py", 3),
            "t.py::b": CaseInfo("unit", "t.py", 7, "AssertionError: queue_position missing"),
            "t.py::c": CaseInfo("contract", "t.py", 11, "assert 503 == 429"),
            "t.py::d": CaseInfo("property", "t.py", 15),
        }
    )
    (tmp_path / "t.json").write_text(trace.render(), encoding="utf-8")
    html = tmp_path / "report.html"
    assert run_trace("report", str(tmp_path / "t.json"), "--html", str(html)).exit_code == 0
    return html


@pytest.mark.slow
def test_chromium_shows_chart_failures_rows_and_the_fragment_filters(
    report: Path, tmp_path: Path
) -> None:
    dom = _dump_dom(tmp_path, report.as_uri())
    rows = _ROW.findall(dom)
    assert [(r[0], r[1], r[4], bool(r[5])) for r in rows] == [
        ("ORCH-0001", "verified", "cdc", False),
        ("ORCH-0002", "failing", "", False),
        ("ORCH-0003", "failing", "", False),
        ("ORCH-0004", "untested", "", False),
        ("ORCH-0005", "verified", "property", False),
        ("ORCH-0006", "untested", "", False),
    ]
    # The chart: one bar of all requirements, then one per section, segments by state.
    segments = _SEGMENT.findall(dom)
    overall = dict(segments[:3])
    assert overall == {"verified": "2", "failing": "2", "untested": "2"}, segments
    assert sum(int(count) for _, count in segments[3:]) == 6
    # The failing requirements with each failing test and the first line of its failure.
    failing = dom[dom.index('id="failing"') : dom.index('id="requirements"')]
    assert "ORCH-0002" in failing and "AssertionError: queue_position missing" in failing
    assert "ORCH-0003" in failing and "assert 503 == 429" in failing
    assert re.search(r'href="[^"]*t\.py#L7"', failing), "a failing test links to its line"
    # Filters from the fragment: state and level, section, kind of evidence.
    dom = _dump_dom(tmp_path, report.as_uri() + "#state=failing&level=MUST")
    assert [r[0] for r in _ROW.findall(dom) if not r[5]] == ["ORCH-0002"]
    assert "1 of 6 shown" in dom
    dom = _dump_dom(tmp_path, report.as_uri() + "#section=1+Basics&state=failing")
    assert [r[0] for r in _ROW.findall(dom) if not r[5]] == ["ORCH-0003"]
    dom = _dump_dom(tmp_path, report.as_uri() + "#evidence=property")
    assert [r[0] for r in _ROW.findall(dom) if not r[5]] == ["ORCH-0005"]


def _png_pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit, non-interlaced RGB(A) PNG (Chromium's)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0) and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    raw, stride, previous = zlib.decompress(data), width * channels, bytearray(width * channels)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, channels)]  # type: ignore[misc]
        previous = line
    return width, height, pixels


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.slow
def test_the_screenshot_shows_the_chart_in_the_proportions_of_the_states(
    report: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,700", report.as_uri())
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 700)
    seen = Counter(pixels)
    area = {state: seen[_rgb(colour)] for state, colour in STATE_COLOURS.items()}
    for state in ("verified", "failing", "untested"):
        assert area[state] > 500, f"the chart shows no {state} segment: {area}"
    assert area["flaky"] == area["suspect"] == 0, f"states nobody has are drawn: {area}"
    # Two requirements in each state: the three colours cover about the same area.
    assert max(area[s] for s in ("verified", "failing", "untested")) < 1.3 * min(
        area[s] for s in ("verified", "failing", "untested")
    ), area
