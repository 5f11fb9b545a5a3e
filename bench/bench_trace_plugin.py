"""Benchmark the traceability plugin's overhead on 5,000 trivial tests.

Budget: at most 3 % over the same run without the plugin. A temporary
project holds a 100-requirement index and 5,000 trivial tests in 50 files,
each citing one requirement (the marker is also declared in the ini, so the run
without the plugin does not pay for unknown-marker warnings instead). Three
variants run side by side, interleaved round by round so machine load hits
them alike:

* ``without``: ``-p no:harness.plugin.trace`` (the plugin is not loaded at all);
* ``with``: the plugin loaded, citations validated, outcomes recorded;
* ``with+reports``: also ``--orch-report-dir`` (trace.json, COMPLIANCE.md, HTML).

Each is a fresh ``python -m pytest -q -p no:cacheprovider`` subprocess; the
medians of wall time and of the child's CPU time (user + system, from
``getrusage``) are printed. On a shared machine CPU time is the steadier
figure; both are reported.

Run: ``.venv/bin/python -m bench.bench_trace_plugin [--tests N] [--rounds K]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench._common import run_pytest_once as run_once
from harness.trace.index import Index, Requirement, normalise_text, text_sha256
from harness.trace.index_file import render_index

BUDGET = 0.03
_VARIANTS: dict[str, list[str]] = {
    "without": ["-p", "no:harness.plugin.trace"],
    "with": [],
    "with+reports": ["--orch-report-dir", "out"],
}


def make_project(root: Path, tests: int, requirements: int = 100, per_file: int = 100) -> None:
    reqs = []
    for n in range(1, requirements + 1):
        text = f"The server MUST handle case {n}."
        reqs.append(
            Requirement(f"ORCH-{n:04d}", "MUST", "1 A", normalise_text(text), text_sha256(text), n)
        )
    index = root / "requirements" / "index.yaml"
    index.parent.mkdir(parents=True)
    index.write_text(render_index(Index.from_requirements("spec.md", reqs)), encoding="utf-8")
    (root / "pytest.ini").write_text(
        "[pytest]\norchq_index = requirements/index.yaml\nmarkers =\n    req: cited IDs\n",
        encoding="utf-8",
    )
    for f in range(0, tests, per_file):
        body = ["import pytest\n"]
        for t in range(f, min(f + per_file, tests)):
            body.append(
                f'\n@pytest.mark.req("ORCH-{t % requirements + 1:04d}")\n'
                f"def test_{t}():\n    assert True\n"
            )
        (root / f"test_gen_{f // per_file:03d}.py").write_text("".join(body), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    walls: dict[str, list[float]] = {v: [] for v in _VARIANTS}
    cpus: dict[str, list[float]] = {v: [] for v in _VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.tests)
        run_once(root, [])  # warm the file cache and the collection of every module once
        for _ in range(args.rounds):
            for name, extra in _VARIANTS.items():
                wall, cpu = run_once(root, extra)
                walls[name].append(wall)
                cpus[name].append(cpu)
    base_wall = statistics.median(walls["without"])
    base_cpu = statistics.median(cpus["without"])
    print(
        f"plugin overhead: {args.tests} trivial tests, medians of {args.rounds} interleaved rounds"
    )
    worst = 0.0
    for name in _VARIANTS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        dw, dc = wall / base_wall - 1, cpu / base_cpu - 1
        if name != "without":
            worst = max(worst, dc)
        print(
            f"  {name:13s} wall {wall:6.2f} s ({dw:+6.1%})   CPU {cpu:6.2f} s ({dc:+6.1%}, "
            f"ratio {cpu / base_cpu:.3f}x)"
        )
    print(f"  budget {BUDGET:.0%} (judged on CPU time, the steady figure on a shared machine)")
    if worst > BUDGET:
        print("  OVER BUDGET", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
