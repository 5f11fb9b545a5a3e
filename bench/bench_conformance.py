"""The conformance suite's wall time: serial vs ``-n 2``, per suite, ``orchq verify`` in-process
vs ``orchq verify --serve-cmd``.

    .venv/bin/python -m bench.bench_conformance [--rounds 3] [--only suite,verify,serve-cmd]
                                                [--suites contract,...] [-n 0]

``suite``: ``pytest --pyargs harness.conformance`` in-process (every test on
its own orchestratord), serially and with ``-n 2``, alternating per round; the
JUnit XML of each run gives the time per suite (sum of its test cases' times,
so under ``-n 2`` it is CPU-side work, not wall). ``verify``: ``orchq verify``
from a cold start of the command to its last line, the README's main job, on
the embedded orchestratord (in-process servers). ``serve-cmd``: the same command
with ``--serve-cmd "orchq serve --port {port} --config {config} --db
{state_dir}/orchq.db"``, every configuration a process of its own; the two
alternate within each round, side by side, and their ratio is printed.
``--suites`` and ``-n`` go to both ``orchq verify`` runs (small settings prove
the benchmark works). Each run is a fresh process; the medians over the rounds
are reported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from bench._common import ORCHQ, ROOT, code_note, fmt, log, machine_note, median, table
from harness.verify.progress import suite_of


def _suite_times(junit: Path) -> dict[str, float]:
    times: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        name = next((m for m in module if m.startswith("test_")), "?")
        times[suite_of(f"{name}.py")] += float(case.get("time", "0"))
    return dict(times)


def run_suite(workers: int, workdir: Path) -> tuple[float, dict[str, float], int]:
    junit = workdir / f"junit-n{workers}.xml"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "harness.conformance",
        "-q",
        "-p",
        "no:cacheprovider",
        "--junitxml",
        str(junit),
        "-n",
        str(workers),
    ]
    began = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    return wall, _suite_times(junit), proc.returncode


SERVE_CMD = f"{ORCHQ} serve --port {{port}} --config {{config}} --db {{state_dir}}/orchq.db"
"""The serve command of the ``serve-cmd`` contender: this venv's ``orchq serve``."""


def run_verify(
    workdir: Path, *, serve_cmd: str | None = None, suites: str | None = None, workers: int = 0
) -> tuple[float, int]:
    args = [
        sys.executable,
        "-m",
        "harness",
        "verify",
        "--report-dir",
        str(workdir / "verify"),
        "-n",
        str(workers),
    ]
    if suites:
        args += ["--suites", suites]
    if serve_cmd is not None:
        args += ["--serve-cmd", serve_cmd]
    began = time.perf_counter()
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True)
    return time.perf_counter() - began, proc.returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="suite,verify,serve-cmd")
    parser.add_argument("--suites", default=None, help="--suites of both orchq verify runs.")
    parser.add_argument("-n", dest="workers", type=int, default=0, help="-n of orchq verify.")
    options = parser.parse_args(argv)
    only = set(options.only.split(","))
    print(f"machine: {machine_note()}; {code_note()}")
    walls: dict[str, list[float]] = defaultdict(list)
    per_suite: dict[int, dict[str, list[float]]] = {0: defaultdict(list), 2: defaultdict(list)}
    codes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="orchq-bench-conf-") as tmp:
        workdir = Path(tmp)
        for round_no in range(1, options.rounds + 1):
            if "suite" in only:
                for workers in (0, 2) if round_no % 2 else (2, 0):
                    wall, suites, code = run_suite(workers, workdir)
                    log(f"round {round_no}: suite -n {workers}: {wall:.1f} s (exit {code})")
                    walls[f"pytest -n {workers}"].append(wall)
                    codes.append(code)
                    for suite, seconds in suites.items():
                        per_suite[workers][suite].append(seconds)
            contenders = [
                (name, serve)
                for name, serve in (
                    ("orchq verify (in-process, cold)", None),
                    ("orchq verify --serve-cmd (cold)", SERVE_CMD),
                )
                if ("serve-cmd" if serve else "verify") in only
            ]
            if round_no % 2 == 0:
                contenders.reverse()
            for name, serve in contenders:
                wall, code = run_verify(
                    workdir, serve_cmd=serve, suites=options.suites, workers=options.workers
                )
                log(f"round {round_no}: {name}: {wall:.1f} s (exit {code})")
                walls[name].append(wall)
                codes.append(code)
    rows = [
        [name, fmt(median(values)), " / ".join(fmt(v) for v in values)]
        for name, values in walls.items()
    ]
    print(table(["run", "median wall s", "rounds"], rows))
    in_process = walls.get("orchq verify (in-process, cold)")
    served = walls.get("orchq verify --serve-cmd (cold)")
    if in_process and served:
        print(f"--serve-cmd / in-process: {median(served) / median(in_process):.2f}x")
    serial, parallel = walls.get("pytest -n 0"), walls.get("pytest -n 2")
    if serial and parallel:
        print(f"-n 2 / serial: {median(parallel) / median(serial):.2f}x")
    if "suite" in only:
        suites = sorted(set(per_suite[0]) | set(per_suite[2]))
        print()
        print(
            table(
                ["suite", "serial: sum of test times s", "-n 2: sum of test times s"],
                [[s, fmt(median(per_suite[0][s])), fmt(median(per_suite[2][s]))] for s in suites],
            )
        )
    if any(codes):
        print(f"NOTE: some runs did not exit 0: {codes}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
