"""The benchmark runner: every benchmark of orchq, each against its baseline in the same run.

    .venv/bin/python -m bench [--only admission,stream,...] [--rounds N] [--smoke]
    .venv/bin/python -m bench --list

Each benchmark runs its contenders side by side, round by round, alternating
which goes first, and prints medians and the ratio to its baseline; its own
command (``python -m bench.<module>``, in :data:`BENCHMARKS`) takes more
options. ``--rounds`` overrides every benchmark's rounds (or runs); ``--smoke``
runs each with its smallest settings, which proves it works and measures
nothing. Benchmarks run against the installed package, from the repository
root; servers are subprocesses on 127.0.0.1 with temporary databases, and wrk
is installed with apt-get if missing. Raw results go to bench/out/ (ignored by
git); bench/RESULTS.md holds the method and the current figures.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench._common import BENCH_DIR, code_note, machine_note


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its module, what it compares, and its arguments."""

    module: str
    compares: str
    rounds_flag: str
    smoke: tuple[str, ...]
    """The smallest settings that still run every contender once."""
    json: bool = False
    """The module writes its raw results with ``--json PATH``."""
    default: bool = True
    """Run when ``--only`` is not given."""


BENCHMARKS: dict[str, Benchmark] = {
    "admission": Benchmark(
        "bench.bench_admission",
        "POST /v1/tasks under wrk -c64: orchestratord vs bare Starlette + one SQLite insert",
        "--rounds",
        ("--rounds", "1", "--duration", "1", "--warmup", "0"),
        json=True,
    ),
    "stream": Benchmark(
        "bench.bench_stream",
        "SSE tokens/s, one stream and 100 at once: orchestratord vs a bare SSE server",
        "--rounds",
        (
            "--rounds",
            "1",
            "--single-reps",
            "1",
            "--single-tokens",
            "256",
            "--agg-streams",
            "4",
            "--agg-tokens",
            "64",
        ),
        json=True,
    ),
    "runs": Benchmark(
        "bench.bench_runs",
        "1,000 diamond DAGs at once: orchestratord runs vs a client orchestrating plain tasks",
        "--rounds",
        ("--rounds", "1", "--runs", "8"),
        json=True,
    ),
    "children": Benchmark(
        "bench.bench_children",
        "100 child runs under one for_each parent: orchestratord fan-out vs a client starting them",
        "--rounds",
        ("--rounds", "1", "--children", "6", "--parallel", "4"),
        json=True,
    ),
    "webhooks": Benchmark(
        "bench.bench_webhooks",
        "webhook deliveries/s to the harness receiver: orchestratord vs a bare httpx sender",
        "--rounds",
        ("--rounds", "1", "--runs", "4", "--concurrency", "4"),
        json=True,
    ),
    "determinism": Benchmark(
        "bench.bench_determinism",
        "64 seeds x 2 replicas verified byte for byte: orchestratord vs pre-built streams",
        "--rounds",
        ("--rounds", "1", "--seeds", "4", "--tokens", "8"),
        json=True,
    ),
    "conformance": Benchmark(
        "bench.bench_conformance",
        "the conformance suite: -n 2 vs serial, orchq verify --serve-cmd vs in-process",
        "--rounds",
        ("--rounds", "1", "--only", "verify,serve-cmd", "--suites", "metrics"),
    ),
    "trace-report": Benchmark(
        "bench.bench_trace_report",
        "orchq trace report on 100,000 results vs parsing and writing the trace",
        "--runs",
        ("--tests", "1000", "--requirements", "50", "--runs", "1"),
    ),
    "spec-extract": Benchmark(
        "bench.bench_spec_extract",
        "orchq spec extract on 10,000 requirements vs reading the spec and writing the index",
        "--runs",
        ("--requirements", "100", "--runs", "1"),
    ),
    "plugin": Benchmark(
        "bench.bench_trace_plugin",
        "5,000 trivial tests: the traceability plugin vs -p no:harness.plugin.trace",
        "--rounds",
        ("--tests", "50", "--rounds", "1"),
    ),
    "startup": Benchmark(
        "bench.bench_plugin_startup",
        "a foreign project's pytest run: orchq installed vs -p no:orchq",
        "--rounds",
        ("--rounds", "1", "--tests", "5"),
    ),
    "mutants": Benchmark(
        "bench.mutant_catalogue",
        "the conformance suite against every catalogued mutant vs unmutated: kill rate",
        "",
        ("--scope", "targeted", "--select", "X-Request-Id not echoed"),
        default=False,
    ),
}
"""The benchmarks, by the name ``--only`` takes. ``mutants`` takes hours: only on demand."""


def arguments(bench: Benchmark, rounds: int | None, smoke: bool, raw: Path) -> list[str]:
    argv = list(bench.smoke) if smoke else []
    if rounds is not None and bench.rounds_flag and not smoke:
        argv += [bench.rounds_flag, str(rounds)]
    if bench.json:
        argv += ["--json", str(raw)]
    return argv


def run_one(name: str, argv: list[str]) -> int:
    """Run benchmark ``name``'s ``main(argv)``; its exit code (0: ran, every target met)."""
    main: Callable[[list[str]], int | None] = importlib.import_module(BENCHMARKS[name].module).main
    try:
        return main(argv) or 0
    except SystemExit as stopped:
        return stopped.code if isinstance(stopped.code, int) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(name for name, bench in BENCHMARKS.items() if bench.default),
        help=f"Comma-separated, out of {', '.join(BENCHMARKS)}.",
    )
    parser.add_argument("--rounds", type=int, default=None, help="Rounds of every benchmark.")
    parser.add_argument(
        "--smoke", action="store_true", help="Smallest settings: proves each runs, no figures."
    )
    parser.add_argument("--list", action="store_true", help="Print the benchmarks and exit.")
    args = parser.parse_args(argv)
    if args.list:
        for name, bench in BENCHMARKS.items():
            print(f"{name:13s} python -m {bench.module}: {bench.compares}")
        return 0
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")

    out = BENCH_DIR / "out" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    print(f"Machine: {machine_note()}; code: {code_note()}")
    codes: dict[str, int] = {}
    started = time.perf_counter()
    for name in wanted:
        bench = BENCHMARKS[name]
        command = arguments(bench, args.rounds, args.smoke, out / f"{name}.json")
        print(f"\n## {name}: {bench.compares}\n\n`python -m {bench.module} {' '.join(command)}`\n")
        began = time.perf_counter()
        codes[name] = run_one(name, command)
        print(f"\n({name}: exit {codes[name]}, {time.perf_counter() - began:.0f} s)", flush=True)
    print(f"\nTotal bench time: {time.perf_counter() - started:.0f} s; raw results in {out}")
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        print(f"Missed a target or failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
