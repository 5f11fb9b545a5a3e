"""The wheel works where users are: no checkout, any folder, any supported Python.

The checkout is built into a wheel (``pip wheel``), installed into a fresh venv outside
the repository (dependencies from the package index), and ``orchq verify`` runs in an
empty folder: it must pass, say "conformant" and leave its reports in
``./orchq-report``. ``ORCHQ_WHEEL_PYTHON`` picks the interpreter of that venv (CI runs
this module once more on the newest supported Python).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.docs.doccommands import RUN_FROM_THE_WHEEL, commands_of, matches_output
from tests.packaging.venvs import ROOT, build_wheel, clean_env, copy_checkout, make_venv, run

pytestmark = pytest.mark.slow

PYTHON = os.environ.get("ORCHQ_WHEEL_PYTHON") or sys.executable
SHIPPED = ("specs", "requirements", "contracts", "snapshots")
"""The top-level folders setup.py bundles (harness/resources.py reads them)."""
VERIFY_TIMEOUT_S = 1200.0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    source = copy_checkout(base / "source")
    (base / "dist").mkdir()
    return build_wheel(source, base / "dist", PYTHON)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` of a fresh venv (outside the checkout) with the wheel installed."""
    return make_venv(tmp_path_factory.mktemp("venv") / "venv", str(wheel), python=PYTHON)


def test_the_wheel_carries_every_shipped_file_as_committed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for folder in SHIPPED:
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    inside = "harness/_bundled/" + path.relative_to(ROOT).as_posix()
                    assert inside in names, f"{inside} is not in {wheel.name}"
                    assert archive.read(inside) == path.read_bytes(), f"{inside} differs"
        for data in (
            "harness/conformance/conformance.ini",
            "harness/trace/orchq-trace-4.schema.json",
        ):
            assert data in names, f"{data} is not in {wheel.name}"
        entry_points = archive.read("orchq-0.1.0.dist-info/entry_points.txt").decode()
    assert "[pytest11]\norchq = harness.plugin\n" in entry_points, entry_points


def test_the_installed_package_reads_its_own_copy_not_a_checkout(
    installed: Path, tmp_path: Path
) -> None:
    probe = (
        "import json; from harness import resources; "
        "print(json.dumps([str(resources.checkout()), str(resources.path(resources.INDEX))]))"
    )
    done = run([str(installed / "python"), "-c", probe], tmp_path)
    assert done.returncode == 0, done.stderr
    checkout, index = json.loads(done.stdout)
    assert checkout == "None"
    assert "site-packages" in index and "_bundled" in index, index
    assert not Path(index).resolve().is_relative_to(ROOT)


def _page_command(test_name: str) -> tuple[str, tuple[str, ...]]:
    """The command a docs page shows that ``test_name`` runs for it, and its output lines."""
    ((page, text),) = (key for key, test in RUN_FROM_THE_WHEEL.items() if test.endswith(test_name))
    (command,) = (c for c in commands_of(ROOT / "docs")[page] if c.text == text)
    return text, command.output


def test_orchq_verify_passes_in_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    """The user guide's first command, from the wheel: it prints what the page shows."""
    text, page_output = _page_command("test_orchq_verify_passes_in_an_empty_folder")
    folder = tmp_path / "empty"
    folder.mkdir()
    done = run([str(installed / "orchq"), *text.split()[1:]], folder, clean_env(), VERIFY_TIMEOUT_S)
    log = folder / "orchq-report" / "pytest.log"
    detail = done.stdout[-4000:] + done.stderr[-2000:]
    if log.exists():
        detail += "\n--- pytest.log (tail) ---\n" + log.read_text(encoding="utf-8")[-4000:]
    assert done.returncode == 0, detail
    assert "orchq verify: conformant (exit 0)" in done.stdout, detail
    missing = matches_output(page_output, done.stderr + done.stdout)
    assert missing is None, f"`{text}` did not print the line docs/README.md shows: {missing}"
    reports = sorted(p.name for p in (folder / "orchq-report").iterdir())
    assert reports == ["COMPLIANCE.md", "junit.xml", "pytest.log", "report.html", "trace.json"]
    trace = json.loads((folder / "orchq-report" / "trace.json").read_text(encoding="utf-8"))
    assert trace["schema"] == "orchq-trace/4" and trace["title"] == "OrchQueue v1"
    assert trace["summary"]["states"]["failing"] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["orchq-report"], (
        "wrote outside ./orchq-report"
    )


def test_orchq_verify_target_checks_a_served_orchestratord(installed: Path, tmp_path: Path) -> None:
    """``orchq serve`` and ``orchq verify --target`` of the installed package, no checkout."""
    server = subprocess.Popen(
        [str(installed / "orchq"), "serve", "--port", "0", "--db", str(tmp_path / "served.db")],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, f"orchq serve printed no URL: {first!r}"
        folder = tmp_path / "elsewhere"
        folder.mkdir()
        done = run(
            [str(installed / "orchq"), "verify", "--suites", "metrics", "--json"],
            folder,
            clean_env(ORCHQ_TARGET=url.group(0)),
            VERIFY_TIMEOUT_S,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        summary = json.loads(done.stdout)
        assert summary["target"] == url.group(0) and summary["verdict"] == "conformant"
        assert (folder / "orchq-report" / "trace.json").is_file()
    finally:
        server.terminate()
        server.wait(timeout=30)
