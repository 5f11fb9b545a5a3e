"""Paired A/B of admission between this tree and another commit, interpreter or tuning.

    .venv/bin/python -m bench.ab_admission --against REV [--rounds 10] [--config admission.yaml]
    .venv/bin/python -m bench.ab_admission --against-python /tmp/v/bin/python [--rounds 10]
    .venv/bin/python -m bench.ab_admission --toggle NAME [--rounds 10]

On this shared machine the throughput the host gives a process changes by
20 % from one 10 s run to the next, which swamps a 2 ms change of p99 when
two 3-round medians taken minutes apart are compared. This benchmark runs the
two versions back to back in each round (alternating which goes first) and
reports the per-round differences and their median: paired figures, not two
independent medians. ``REV`` is checked out into a temporary git worktree;
both versions run as ``orchq serve`` from this venv, each with its own tree
first on ``PYTHONPATH``. With ``--against-python`` the other side is this
tree served by that interpreter (a venv where this project's dependencies are
installed, e.g. ``pip install -e .``). With ``--toggle NAME`` the other side
is this tree with the optimisation ``NAME`` switched off (the ``tuning``
section of its config: orchestrator/config.py, docs/design/performance.md),
which measures what that optimisation buys. The workload is bench_admission's
(wrk -t1 -c64, 2 s warm-up, then the measured run).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import bench_admission
from bench._common import ROOT, WrkResult, ensure_wrk, fmt, log, median, table, worktree


@dataclass(frozen=True)
class Side:
    """One contender: a source tree, served by this interpreter or by ``python``."""

    tree: Path
    python: str | None = None
    off: tuple[str, ...] = ()
    """Optimisations switched off."""


def one_run(side: Side, round_no: int, config: str, duration_s: int) -> WrkResult:
    run = bench_admission.one_run(
        "orchq",
        round_no,
        duration_s=duration_s,
        connections=64,
        warmup_s=2,
        config=config,
        extra_env={"PYTHONPATH": str(side.tree)},
        python=side.python,
        off=side.off,
    )
    return run.wrk


@contextlib.contextmanager
def other_side(args: argparse.Namespace) -> Iterator[tuple[str, Side]]:
    if args.toggle is not None:
        yield f"without {args.toggle}", Side(ROOT, off=(args.toggle,))
        return
    if args.against_python is not None:
        python = Path(args.against_python)
        if not python.is_file():
            raise SystemExit(f"ab_admission: no interpreter at {python}")
        yield args.against_python, Side(ROOT, args.against_python)
        return
    with worktree(args.against) as tree:
        yield args.against, Side(tree)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    against = parser.add_mutually_exclusive_group(required=True)
    against.add_argument("--against", help="the other commit (any git revision)")
    against.add_argument("--against-python", help="the other interpreter (this tree, served by it)")
    against.add_argument(
        "--toggle", help="an optimisation to switch off on the other side (a field of Tuning)"
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--config", default=bench_admission.CONFIG)
    args = parser.parse_args(argv)
    ensure_wrk()
    results: list[dict[str, WrkResult]] = []
    this = "this tree"
    with other_side(args) as (that, other):
        sides = {this: Side(ROOT), that: other}
        for round_no in range(1, args.rounds + 1):
            order = list(sides) if round_no % 2 else list(sides)[::-1]
            pair = {}
            for name in order:
                log(f"ab round {round_no}: {name}")
                pair[name] = one_run(sides[name], round_no, args.config, args.duration)
            results.append(pair)
    rows = [
        [
            i,
            fmt(pair[this].rps, 0),
            fmt(pair[that].rps, 0),
            f"{pair[this].rps / pair[that].rps:.3f}",
            fmt(pair[this].p99_ms, 2),
            fmt(pair[that].p99_ms, 2),
            f"{pair[this].p99_ms - pair[that].p99_ms:+.2f}",
        ]
        for i, pair in enumerate(results, start=1)
    ]
    print(
        table(
            [
                "round",
                f"{this} req/s",
                f"{that} req/s",
                "ratio",
                f"{this} p99 ms",
                f"{that} p99 ms",
                "p99 difference",
            ],
            rows,
        )
    )
    ratios = [pair[this].rps / pair[that].rps for pair in results]
    differences = [pair[this].p99_ms - pair[that].p99_ms for pair in results]
    better = sum(d < 0 for d in differences)
    print(
        f"\nmedian req/s ratio {median(ratios):.3f}; median p99 difference "
        f"{median(differences):+.2f} ms; p99 lower in {better} of {len(results)} rounds "
        f"(config {args.config})"
    )


if __name__ == "__main__":
    main()
