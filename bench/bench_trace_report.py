"""Benchmark ``orchq trace report`` on a trace of 100,000 test results.

Budget: at most 3 s. A trace is generated over a 1,000-requirement
index (mixed levels and outcomes, each test citing one to three requirements,
some requirements suspect through a lock), written as ``orchq-trace/4`` JSON,
and the full command path is timed in-process through click (read + validate
+ recompute states + render COMPLIANCE.md and HTML + atomic writes), five
times; the median wall time is what the budget applies to. Side by side, run
for run, the bare baseline reads the same trace, parses its JSON and writes it
back: the ratio of the medians is what validating, recomputing and rendering
cost over touching the data once.

Run: ``.venv/bin/python -m bench.bench_trace_report [--tests N] [--requirements N] [--runs K]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from harness.trace.index import (
    LEVELS,
    Index,
    Requirement,
    normalise_text,
    text_sha256,
)
from harness.trace.index_file import write_text_atomic
from harness.trace.report import build_trace
from harness.trace.states import OUTCOMES
from harness.trace.trace_cli import trace_group

BUDGET_S = 3.0


def generate_trace_text(tests: int, requirements: int, seed: int = 7) -> str:
    """Deterministic synthetic trace JSON."""
    rng = random.Random(seed)
    reqs = []
    for n in range(1, requirements + 1):
        level = LEVELS[n % len(LEVELS)]
        text = f"The server {level} handle case {n} of `POST /v1/tasks` with 400 <INVALID> | x."
        reqs.append(
            Requirement(
                f"ORCH-{n:04d}",
                level,
                f"{n // 25 + 1} Section",
                normalise_text(text),
                text_sha256(text),
                n,
            )
        )
    index = Index.from_requirements("spec.md", reqs)
    lock = {r.id: ("0" * 64 if r.number % 97 == 0 else r.sha256) for r in reqs}
    weights = [90, 3, 2, 1, 2, 2]
    outcomes = {}
    for t in range(tests):
        ids = sorted(
            {f"ORCH-{rng.randint(1, requirements):04d}" for _ in range(rng.randint(1, 3))},
            key=lambda i: (len(i), i),
        )
        outcome = rng.choices(OUTCOMES, weights)[0]
        outcomes[f"tests/test_mod{t // 100:04d}.py::test_case[{t}]"] = (tuple(ids), outcome)
    trace = build_trace(index, "requirements/index.yaml", outcomes, lock, "lock.yaml")
    return trace.render()


def bare_baseline(trace: Path, out: Path) -> None:
    """Read and parse the trace, write it back: the floor under any report of it."""
    document = json.loads(trace.read_text(encoding="utf-8"))
    write_text_atomic(out, json.dumps(document, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100_000)
    parser.add_argument("--requirements", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trace = root / "trace.json"
        trace.write_text(generate_trace_text(args.tests, args.requirements), encoding="utf-8")
        size_mib = trace.stat().st_size / 2**20
        argv_report = [
            "report",
            str(trace),
            "--md",
            str(root / "COMPLIANCE.md"),
            "--html",
            str(root / "report.html"),
        ]
        timings: list[float] = []
        cpu: list[float] = []
        baseline: list[float] = []
        outputs: set[bytes] = set()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            bare_baseline(trace, root / "copy.json")
            baseline.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            result = CliRunner().invoke(trace_group, argv_report, catch_exceptions=False)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if result.exit_code != 0:
                print(f"error: {result.output.strip()}", file=sys.stderr)
                return 1
            outputs.add((root / "report.html").read_bytes() + (root / "COMPLIANCE.md").read_bytes())
        html_mib = (root / "report.html").stat().st_size / 2**20
    if len(outputs) != 1:
        print("error: the reports were not byte-identical across runs", file=sys.stderr)
        return 1
    median = statistics.median(timings)
    print(
        f"trace report: {args.tests} test results, {args.requirements} requirements, "
        f"trace {size_mib:.1f} MiB, HTML {html_mib:.1f} MiB"
    )
    print(
        f"  median of {args.runs}: {median:.2f} s (min {min(timings):.2f}, max "
        f"{max(timings):.2f}; budget {BUDGET_S:.0f} s); median CPU {statistics.median(cpu):.2f} s"
    )
    bare = statistics.median(baseline)
    print(f"  bare baseline (parse + write the trace): {bare:.2f} s; ratio {median / bare:.2f}x")
    if median > BUDGET_S:
        print("  OVER BUDGET", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
