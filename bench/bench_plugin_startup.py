"""Start-up cost of the installed orchq plugin in a project that does not use it.

Installing orchq puts its ``pytest11`` entry point into every pytest run of the
environment. This measures what that costs a foreign project: a temporary
project (its own ``req`` and ``contract`` markers, its own fixtures, a few
trivial tests in a few files) run as a fresh ``python -m pytest -q -p
no:cacheprovider`` subprocess, side by side:

* ``-p no:orchq``: the plugin is not loaded at all;
* ``with orchq``: the plugin loaded (it registers its options, fixtures and
  orch_ markers, and stays inert: the project does not opt in).

Variants alternate round by round so machine load hits them alike; the medians
of wall time and of the child's CPU time (user + system, ``getrusage``) are
printed with the difference. On a shared machine CPU time is the steadier figure.

Run: ``.venv/bin/python -m bench.bench_plugin_startup [--rounds 15] [--tests 20]``
(also ``python -m bench.run_all --only startup``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench._common import fmt, table
from bench._common import run_pytest_once as run_once

VARIANTS: dict[str, list[str]] = {"-p no:orchq": ["-p", "no:orchq"], "with orchq": []}

_CONFTEST = """import pytest


@pytest.fixture
def make_session():
    return "ours"
"""
_INI = """[pytest]
addopts = --strict-markers
markers =
    req(ticket): the tracker ticket a test covers
    contract: our own contract tests
"""


def make_project(root: Path, tests: int, per_file: int = 10) -> None:
    """A foreign project with ``tests`` trivial tests, ``per_file`` to a file."""
    (root / "pytest.ini").write_text(_INI, encoding="utf-8")
    (root / "conftest.py").write_text(_CONFTEST, encoding="utf-8")
    for start in range(0, tests, per_file):
        body = ["import pytest\n"]
        for n in range(start, min(start + per_file, tests)):
            body.append(
                f'\n@pytest.mark.req("JIRA-{n}")\n@pytest.mark.contract\n'
                f"def test_{n}(make_session):\n    assert make_session == 'ours'\n"
            )
        (root / f"test_app_{start // per_file:03d}.py").write_text("".join(body), encoding="utf-8")


def bench(rounds: int = 15, tests: int = 20) -> dict[str, Any]:
    """Medians per variant: ``{"tests", "rounds", "wall": {...}, "cpu": {...}}`` in seconds."""
    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, tests)
        for extra in VARIANTS.values():
            run_once(root, extra)  # warm the file cache once per variant
        for _ in range(rounds):
            for name, extra in VARIANTS.items():
                wall, cpu = run_once(root, extra)
                walls[name].append(wall)
                cpus[name].append(cpu)
    return {
        "tests": tests,
        "rounds": rounds,
        "wall": {name: statistics.median(values) for name, values in walls.items()},
        "cpu": {name: statistics.median(values) for name, values in cpus.items()},
    }


def render(result: dict[str, Any]) -> str:
    base_wall, base_cpu = result["wall"]["-p no:orchq"], result["cpu"]["-p no:orchq"]
    rows = []
    for name in VARIANTS:
        wall, cpu = result["wall"][name], result["cpu"][name]
        rows.append(
            [
                name,
                f"{fmt(wall * 1000, 0)} ms",
                f"{(wall - base_wall) * 1000:+.0f} ms",
                f"{fmt(cpu * 1000, 0)} ms",
                f"{(cpu - base_cpu) * 1000:+.0f} ms",
                f"{cpu / base_cpu:.3f}x",
            ]
        )
    return (
        f"A foreign project, {result['tests']} trivial tests; medians of {result['rounds']} "
        "interleaved rounds, fresh `python -m pytest -q -p no:cacheprovider` each.\n\n"
        + table(["variant", "wall", "vs no:orchq", "CPU", "vs no:orchq", "CPU ratio"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tests", type=int, default=20)
    args = parser.parse_args(argv)
    print(render(bench(rounds=args.rounds, tests=args.tests)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
