"""Profile orchestratord under one benchmark workload with py-spy (sampling, out of process).

    .venv/bin/pip install py-spy        # once; not a project dependency
    .venv/bin/python -m bench.tools.profile_server admission [--stdlib-loop] [--seconds 10]
    .venv/bin/python -m bench.tools.profile_server stream-single|stream-aggregate [--stdlib-loop]

Starts ``orchq serve`` (or, on the stdlib loop, bench/tools/serve_diag.py) as a subprocess, attaches
``py-spy record --format raw`` to it, drives the workload from this process
(wrk for admission), then prints the functions with the most samples: self
time and inclusive time, as a percentage of the server's busy samples. The raw
collapsed stacks are kept in bench/out/ for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from bench import bench_admission, bench_stream
from bench._common import BENCH_DIR, VENV_BIN, WRK_DIR, log, run_wrk, running


def _py_spy() -> str:
    found = shutil.which("py-spy") or (
        str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else None
    )
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


# Hot spots of the admission and streaming paths: share of samples whose stack contains the key.
WATCH = (
    ("Store.* (SQLite)", "orchestrator/store/db.py"),
    ("Store.insert_task", "Store.insert_task"),
    ("Store.get_session", "Store.get_session"),
    ("Journal.write_pending", "Journal.write_pending"),
    ("prometheus_client (all)", "prometheus_client"),
    ("MetricWrapperBase.labels", "MetricWrapperBase.labels"),
    ("asyncio.timeout (per token)", "asyncio/timeouts.py"),
    ("service._dumps (json)", "_dumps (orchestrator"),
    ("mock engine token_at", "token_at"),
    ("SSE event_stream", "event_stream"),
    ("Orchestrator.admit", "Orchestrator.admit"),
    ("Orchestrator._run (execution)", "Orchestrator._run"),
    ("fastapi request handler", "get_request_handler"),
    ("JSONResponse render", "JSONResponse.__init__"),
    ("transport.write", "Transport.write"),
)


def fold(path: Path, top: int) -> str:
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    watched: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        for name, key in WATCH:
            if key in stack:
                watched[name] += int(count)
    out = [f"{total} samples", "", "watched (inclusive):"]
    out += [f"  {100 * watched[name] / total:5.1f}%  {name}" for name, _ in WATCH]
    out += ["", "self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive (orchestrator/, starlette/, fastapi/, uvicorn/, json, sqlite):"]
    keep = ("orchestrator/", "starlette/", "fastapi/", "uvicorn/", "json/", "db.py", "metrics")
    shown = [(f, n) for f, n in inclusive.most_common() if any(k in f for k in keep)]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in shown[:top]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=["admission", "stream-single", "stream-aggregate"])
    parser.add_argument(
        "--stdlib-loop", action="store_true", help="Profile orchq on the stdlib asyncio loop."
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration (admission).")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second.")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--config", default=None, help="A config in bench/configs/ instead.")
    parser.add_argument(
        "--idle",
        action="store_true",
        help="Also sample blocked time (select, fsync, disk I/O), not only CPU.",
    )
    args = parser.parse_args(argv)

    kind = "orchq+asyncio" if args.stdlib_loop else "orchq"
    config = bench_admission.CONFIG if args.workload == "admission" else bench_stream.CONFIG
    config = args.config or config
    out_dir = BENCH_DIR / "out"
    out_dir.mkdir(exist_ok=True)
    raw = out_dir / f"profile-{args.workload}-{kind.replace('+', '-')}-{int(time.time())}.txt"
    with running(kind, config) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            session_id = bench_stream._session(client)
            if args.workload == "stream-single":
                bench_stream.single_stream(client, session_id, 256, 99, "")
        spy = subprocess.Popen(
            [
                _py_spy(),
                "record",
                "-p",
                str(server.pid),
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
                *(["--idle"] if args.idle else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        try:
            if args.workload == "admission":
                result = run_wrk(
                    server.url,
                    WRK_DIR / "post_task.lua",
                    [session_id],
                    threads=1,
                    connections=64,
                    duration_s=args.seconds,
                )
                log(f"admission: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms")
            elif args.workload == "stream-single":
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    rates = [
                        bench_stream.single_stream(client, session_id, 4096, seed, "")
                        for seed in range(10)
                    ]
                log("single: " + ", ".join(f"{r:,.0f}" for r in rates) + " tokens/s")
            else:
                rates = [
                    bench_stream.aggregate_streams(server.url, session_id, 100, 1000, "")
                    for _ in range(2)
                ]
                log("aggregate: " + ", ".join(f"{r:,.0f}" for r in rates) + " tokens/s")
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
    print(fold(raw, args.top))
    print(f"\nraw stacks: {raw.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
