"""Run every benchmark and print one report (about 3 minutes on 2 cores).

    .venv/bin/python -m bench.run_all [--rounds 3] [--only admission,stream,determinism,startup]

Servers are subprocesses on 127.0.0.1 with temporary databases; wrk is
installed with apt-get if missing. Raw results go to bench/out/ (ignored by
git); bench/RESULTS.md records a run with its command.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from bench import bench_admission, bench_determinism, bench_plugin_startup, bench_stream
from bench._common import BENCH_DIR, code_note, machine_note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds per benchmark.")
    parser.add_argument("--only", default="admission,stream,determinism,startup")
    parser.add_argument("--duration", type=int, default=10, help="wrk seconds per run.")
    parser.add_argument(
        "--with-stdlib-loop",
        action="store_true",
        help="Add orchq on the stdlib asyncio loop (bench/_serve_diag.py), a diagnostic contender.",
    )
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]

    note = f"{machine_note()}; code: {code_note()}"
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": note, "started_at": datetime.now(UTC).isoformat()}
    sections: list[str] = []
    if "admission" in wanted:
        results["admission"] = bench_admission.bench(
            rounds=args.rounds, duration_s=args.duration, with_stdlib_loop=args.with_stdlib_loop
        )
        sections.append(
            "## Admission (POST /v1/tasks, wrk -t1 -c64 -d"
            f"{args.duration}s)\n\n" + bench_admission.render(results["admission"])
        )
    if "stream" in wanted:
        results["stream"] = bench_stream.bench(
            rounds=args.rounds, with_stdlib_loop=args.with_stdlib_loop
        )
        sections.append(
            "## Streaming, zero token delay\n\n" + bench_stream.render(results["stream"])
        )
    if "determinism" in wanted:
        results["determinism"] = bench_determinism.bench(rounds=args.rounds)
        sections.append(
            "## Strict determinism over HTTP\n\n" + bench_determinism.render(results["determinism"])
        )
    if "startup" in wanted:
        results["startup"] = bench_plugin_startup.bench(rounds=max(args.rounds, 5) * 3)
        sections.append(
            "## Start-up cost of the installed plugin in a foreign project\n\n"
            + bench_plugin_startup.render(results["startup"])
        )
    results["seconds"] = time.perf_counter() - started

    print(f"Machine: {note}\n")
    print("\n\n".join(sections))
    print(f"\nTotal bench time: {results['seconds']:.0f} s")
    out = BENCH_DIR / "out"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"results-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(f"Raw results: {path.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
