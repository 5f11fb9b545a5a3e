"""Paired A/B of instructions per task and per admission, counted by valgrind, not timed.

    .venv/bin/python -m bench.tools.ab_instructions --against REV [--this REV] [--workload both]
    .venv/bin/python -m bench.tools.ab_instructions --toggle NAME [--workload both]

Wall-clock A/B runs on this shared machine move by 20 % from one run to the
next (bench/RESULTS.md), so a change worth 3 % of an admission cannot be seen
in them. Instructions executed are not timing: cachegrind (``valgrind
--tool=cachegrind --cache-sim=no``) counts them the same on a quiet or a loaded
host, to within ~0.2 % between repeats. They are not time either (a cache miss
costs more than an add), so this ranks changes to the CPU work per request; the
wall-clock benchmarks still decide the targets.

Each workload runs per contender with a small and a large count, and reports
``(I_large - I_small) / (large - small)``: start-up, imports and shutdown
cancel out. Both trees are byte-compiled first (compiling a fresh worktree's
modules on first import would count as ~440M instructions). Some work depends
on timing even here (how often the WAL is checkpointed, how many requests one
group commit holds), and it only ever adds instructions, so each count is the
least of ``--repeats`` runs; the "spread" column is the largest excess of a
repeat over that least, as a share of it.

The contenders are this tree (or ``--this REV``) and ``--against REV``, each
revision checked out into a temporary git worktree, each tree first on
``PYTHONPATH`` of this interpreter; the drivers are always this tree's. With
``--toggle NAME`` the other contender is this tree with the optimisation
``NAME`` switched off (a field of the config's ``tuning`` section:
orchestrator/config.py, docs/design/performance.md).

- ``execution``: bench/tools/execution_child.py in process: admit N one-token tasks
  on two zero-delay mock replicas (bench/configs/admission.yaml) and run them
  all. Instructions per task: admission, dispatch, decode and persistence,
  without HTTP.
- ``admission``: ``orchq serve`` under valgrind on admission-busy.yaml (every
  replica slot held by a task whose token takes 60 s, so nothing else runs), and N
  ``POST /v1/tasks`` from this process over 64 keep-alive connections.
  Instructions per admission over HTTP: uvicorn, the edge, validation, the
  queue and the group-committed insert.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import bench_admission
from bench._common import (
    BENCH_DIR,
    PYTHON,
    ROOT,
    Server,
    ensure_debian_tool,
    fmt,
    log,
    table,
    tuned_config,
)
from bench.ab_admission import worktree

WORKLOADS = ("execution", "admission")
_I_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
CONNECTIONS = 64
UNDER_VALGRIND = {"keep_alive_timeout_s": 600, "header_timeout_s": 600}
"""A loop turn under valgrind can outlast the default timeouts: the keep-alive timer
would close a connection whose next request is already waiting to be read."""


def _cachegrind(log_file: Path) -> list[str]:
    return [
        ensure_debian_tool("valgrind"),
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        f"--log-file={log_file}",
    ]


def _instructions(log_file: Path) -> int:
    match = _I_REFS.search(log_file.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        raise RuntimeError(f"no instruction count in {log_file}: did the process exit cleanly?")
    return int(match.group(1).replace(",", ""))


@dataclass(frozen=True)
class Contender:
    """A tree to measure, with the optimisations it runs without."""

    tree: Path
    off: tuple[str, ...] = ()


def count_execution(contender: Contender, tasks: int, workdir: Path) -> int:
    """Instructions of bench/tools/execution_child.py admitting and running ``tasks`` tasks."""
    log_file = workdir / f"execution-{tasks}.log"
    argv = [
        *_cachegrind(log_file),
        PYTHON,
        str(BENCH_DIR / "tools" / "execution_child.py"),
        str(tasks),
        str(tuned_config("admission.yaml", workdir, contender.off)),
    ]
    env = {"PYTHONPATH": str(contender.tree)}
    subprocess.run(argv, check=True, env=env, cwd=workdir)
    return _instructions(log_file)


async def _post_tasks(url: str, session_id: str, count: int) -> None:
    body = {"session_id": session_id, "prompt": "Write a haiku about queues.", "max_tokens": 1}
    remaining = count
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.post("/v1/tasks", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"admission answered {response.status_code}")

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


def count_admission(contender: Contender, requests: int, workdir: Path) -> int:
    """Instructions of ``orchq serve`` (replicas busy) answering ``requests`` admissions."""
    log_file = workdir / f"admission-{requests}.log"
    db = workdir / f"admission-{requests}.db"
    config = tuned_config("admission-busy.yaml", workdir, contender.off, UNDER_VALGRIND)
    # -P, as in orchq_server: PYTHONPATH's tree, not this repository's, is measured.
    argv = [*_cachegrind(log_file), PYTHON, "-P", "-m", "harness", "serve", "--host", "127.0.0.1"]
    argv += ["--port", "0", "--db", str(db), "--config", str(config)]
    server = Server("orchq-cachegrind", argv, {"PYTHONPATH": str(contender.tree)}, workdir)
    server.start(timeout_s=600)
    try:
        session_id = bench_admission._session(server.url)
        asyncio.run(_post_tasks(server.url, session_id, requests))
    finally:
        server.stop(timeout_s=600)
    return _instructions(log_file)


Counter = Callable[[Contender, int, Path], int]
COUNTERS: dict[str, tuple[Counter, str]] = {
    "execution": (count_execution, "task"),
    "admission": (count_admission, "admission"),
}


def per_unit(
    counter: Counter, contender: Contender, small: int, large: int, repeats: int
) -> tuple[float, float]:
    """(instructions per unit, spread of the repeats)."""
    least: dict[int, int] = {}
    spread = 0.0
    for count in (small, large):
        runs = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="orchq-icount-") as tmp:
                runs.append(counter(contender, count, Path(tmp)))
            log(f"ab_instructions:   {count}: {runs[-1]:,} instructions")
        least[count] = min(runs)
        spread = max(spread, (max(runs) - min(runs)) / min(runs))
    return (least[large] - least[small]) / (large - small), spread


def _compiled(tree: Path) -> Path:
    """``tree`` with its bytecode written: compiling a fresh worktree costs ~440M instructions."""
    packages = [str(tree / name) for name in ("orchestrator", "harness")]
    subprocess.run([PYTHON, "-m", "compileall", "-q", *packages], check=True)
    return tree


@contextlib.contextmanager
def _tree(rev: str | None) -> Iterator[Path]:
    if rev is None:
        yield _compiled(ROOT)
        return
    with worktree(rev) as tree:
        yield _compiled(tree)


@contextlib.contextmanager
def _others(against: str | None, toggles: Sequence[str]) -> Iterator[dict[str, Contender]]:
    """The contenders measured against this one, by name."""
    if against is None:
        yield {f"without {name}": Contender(_compiled(ROOT), (name,)) for name in toggles}
        return
    with _tree(against) as tree:
        yield {against: Contender(tree)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    other = parser.add_mutually_exclusive_group(required=True)
    other.add_argument("--against", help="the other commit (any git revision)")
    other.add_argument(
        "--toggle",
        action="append",
        help="an optimisation to switch off on the other side (a field of Tuning; repeatable: "
        "one contender each, against one count of this tree)",
    )
    parser.add_argument("--this", help="measure this commit instead of the working tree")
    parser.add_argument("--workload", choices=[*WORKLOADS, "both"], default="both")
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if args.large <= args.small:
        raise SystemExit("ab_instructions: --large must be greater than --small")
    workloads = WORKLOADS if args.workload == "both" else (args.workload,)
    this = args.this or "this tree"
    rows = []
    with _tree(args.this) as mine, _others(args.against, args.toggle or ()) as others:
        for workload in workloads:
            counter, unit = COUNTERS[workload]
            counts, spreads = {}, {}
            for name, contender in ((this, Contender(mine)), *others.items()):
                log(f"ab_instructions: {workload} on {name} ({args.small} and {args.large})")
                counts[name], spreads[name] = per_unit(
                    counter, contender, args.small, args.large, args.repeats
                )
            for name in others:
                rows.append(
                    [
                        f"{workload} (per {unit})",
                        name,
                        fmt(counts[this], 0),
                        fmt(counts[name], 0),
                        f"{counts[this] / counts[name]:.3f}",
                        f"{max(spreads[this], spreads[name]):.2%}",
                    ]
                )
    headers = ["workload", "other", f"{this} instructions", "other's", "ratio", "spread"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
