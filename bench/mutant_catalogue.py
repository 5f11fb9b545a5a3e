"""Run the conformance suite against every mutant of the catalogue: kill rate, and the right blame.

    .venv/bin/python -m bench.mutant_catalogue [--list] [--select TEXT ...] [--scope suite]
                                               [-n 2] [--json bench/out/mutants.json]

The catalogue (``tests/harness/catalogue.py``) lists every mutant self-test with
the requirement it breaks. For each mutant (and once unmutated, the baseline) a
fresh pytest process runs the conformance suite with the mutant applied to every
server it starts (``-p tests.harness.catalogue``, ``ORCHQ_MUTANT``), or starts
the mutant through ``--orch-serve-cmd`` when it is a process of its own, and
writes a trace. A mutant is *killed* when a test fails that passes in the
baseline; its failure *names the right requirement* when the requirement it
breaks is failing in its trace and not in the baseline's (*exactly*: and no
other newly failing requirement). A mutant whose requirement already fails in
the baseline is *masked*: it is neither credited nor held against the suite.

``--scope``: ``suite`` (the whole conformance suite, the default: what a user's
``orchq verify`` runs; about 2 minutes a mutant on 2 cores, 4 for a mutant
started by a serve command), ``module`` (the conformance module of the mutant's
own self-test) or ``targeted`` (that module, with the self-test's ``-k``).
Reports the catalogue's size, the kill rate per spec section (the section of
the broken requirement) and the share of caught mutants whose failure names the
right requirement. Raw results go to ``--json``; bench/RESULTS.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._common import ROOT, code_note, log, machine_note, table

SCOPES = ("suite", "module", "targeted")


@dataclass
class Run:
    """One pytest run of the conformance suite (a mutant's, or a baseline)."""

    exit_code: int
    seconds: float
    failed_tests: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    """Requirements in state ``failing`` (or ``flaky``)."""


@dataclass
class Verdict:
    name: str
    area: str
    breaks: str
    section: str
    killed: bool
    named: bool | None
    """None: masked (the requirement fails in the baseline already)."""
    exactly: bool
    newly_failing: list[str]
    newly_failed_tests: list[str]
    seconds: float


def _args(scope: str, module: str, selection: str | None) -> list[str]:
    if scope == "suite":
        return ["--pyargs", "harness.conformance"]
    args = ["--pyargs", f"harness.conformance.{module}"]
    if scope == "targeted" and selection:
        args += ["-k", selection]
    return args


def run(
    target: list[str], *, mutant: str | None, serve_command: str | None, workers: int, work: Path
) -> Run:
    """One pytest process over ``target`` (its trace read back)."""
    trace = work / f"trace-{time.monotonic_ns()}.json"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *target,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.harness.catalogue",
        "--orch-trace",
        str(trace),
        "-n",
        str(workers),
    ]
    if serve_command is not None:
        argv += ["--orch-serve-cmd", serve_command]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PACT_DO_NOT_TRACK"] = "true"
    if mutant is not None:
        env["ORCHQ_MUTANT"] = mutant
    else:
        env.pop("ORCHQ_MUTANT", None)
    began = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    result = Run(proc.returncode, seconds)
    try:
        document = json.loads(trace.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = (proc.stdout + proc.stderr)[-2000:]
        log(f"  no trace (exit {proc.returncode}):\n{tail}")
        return result
    result.failed_tests = sorted(t["nodeid"] for t in document["tests"] if t["outcome"] == "failed")
    result.failing = sorted(
        r["id"] for r in document["requirements"] if r["state"] in ("failing", "flaky")
    )
    return result


def judge(mutant: Any, section: str, got: Run, baseline: Run) -> Verdict:
    new_tests = sorted(set(got.failed_tests) - set(baseline.failed_tests))
    new_reqs = sorted(set(got.failing) - set(baseline.failing))
    killed = bool(new_tests)
    masked = mutant.breaks in baseline.failing
    named = None if masked else (killed and mutant.breaks in new_reqs)
    exactly = bool(named) and new_reqs == [mutant.breaks]
    return Verdict(
        mutant.name,
        mutant.area,
        mutant.breaks,
        section,
        killed,
        named,
        exactly,
        new_reqs,
        new_tests,
        round(got.seconds, 1),
    )


def report(verdicts: list[Verdict]) -> str:
    by_section: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_section[verdict.section].append(verdict)

    def number(section: str) -> tuple[int, ...]:
        head = section.split(" ", 1)[0]
        return tuple(int(p) for p in head.split(".") if p.isdigit())

    rows = []
    for section in sorted(by_section, key=number):
        group = by_section[section]
        killed = sum(v.killed for v in group)
        rows.append(
            [
                section,
                str(len(group)),
                f"{killed}/{len(group)}",
                f"{100 * killed / len(group):.0f} %",
            ]
        )
    caught = [v for v in verdicts if v.killed and v.named is not None]
    named = sum(bool(v.named) for v in caught)
    exactly = sum(v.exactly for v in caught)
    masked = sum(v.named is None for v in verdicts)
    killed = sum(v.killed for v in verdicts)
    lines = [
        f"catalogue: {len(verdicts)} mutants; killed {killed}/{len(verdicts)} "
        f"({100 * killed / max(1, len(verdicts)):.0f} %)",
        f"caught mutants whose failure names the requirement they break: {named}/{len(caught)}"
        f" ({100 * named / max(1, len(caught)):.0f} %); naming only it: {exactly}/{len(caught)}"
        + (f"; masked by the baseline: {masked}" if masked else ""),
        "",
        table(["spec section", "mutants", "killed", "kill rate"], rows),
    ]
    missed = [v for v in verdicts if not v.killed]
    if missed:
        lines += ["", "survived: " + "; ".join(f"{v.name} ({v.breaks})" for v in missed)]
    misnamed = [v for v in caught if not v.named]
    if misnamed:
        lines += [
            "",
            "caught, but blamed elsewhere: "
            + "; ".join(
                f"{v.name} ({v.breaks} -> {', '.join(v.newly_failing) or 'no requirement'})"
                for v in misnamed
            ),
        ]
    return "\n".join(lines)


def _section(index: Any, req_id: str) -> str:
    requirement = index.get(req_id)
    return requirement.section if requirement is not None else "?"


def main(argv: list[str] | None = None) -> None:
    # The catalogue lives with the self-tests, outside the package; orchq is the installed one.
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from harness.trace.index_file import load_index
    from tests.harness.catalogue import CATALOGUE, describe

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--list", action="store_true", help="Print the catalogue and exit.")
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        help="Only mutants whose name contains this, or of this area (repeatable).",
    )
    parser.add_argument("--scope", choices=SCOPES, default="suite")
    parser.add_argument("-n", dest="workers", type=int, default=0, help="xdist workers per run.")
    parser.add_argument("--json", type=Path, default=None, help="Write the raw results here.")
    options = parser.parse_args(argv)

    index = load_index(ROOT / "requirements" / "index.yaml", "requirements/index.yaml")
    chosen = [
        m
        for m in CATALOGUE
        if not options.select or any(s in m.name or s == m.area for s in options.select)
    ]
    if options.list:
        for mutant in chosen:
            section = _section(index, mutant.breaks)
            print(json.dumps({**describe(mutant), "section": section}, sort_keys=True))
        print(f"{len(chosen)} of {len(CATALOGUE)} mutants")
        return
    print(f"machine: {machine_note()}; {code_note()}")
    print(
        f"scope: {options.scope}; -n {options.workers}; {len(chosen)} of {len(CATALOGUE)} mutants"
    )
    verdicts: list[Verdict] = []
    baselines: dict[tuple[str, ...], Run] = {}
    with tempfile.TemporaryDirectory(prefix="orchq-mutants-") as tmp:
        work = Path(tmp)
        for mutant in chosen:
            serve = mutant.mutation.serve_command
            target = _args(options.scope, mutant.module, mutant.selection)
            key = (*target, "serve" if serve else "in-process")
            if key not in baselines:
                healthy = None
                if serve is not None:
                    from harness.managed.command import embedded_command

                    healthy = embedded_command().template
                log(f"baseline {' '.join(key)} ...")
                baselines[key] = run(
                    target, mutant=None, serve_command=healthy, workers=options.workers, work=work
                )
                log(f"  {baselines[key].seconds:.0f} s; failing {baselines[key].failing or 'none'}")
            log(f"{mutant.name} ({mutant.breaks}) ...")
            got = run(
                target,
                mutant=None if serve else mutant.name,
                serve_command=serve,
                workers=options.workers,
                work=work,
            )
            section = _section(index, mutant.breaks)
            verdict = judge(mutant, section, got, baselines[key])
            log(
                f"  killed={verdict.killed} named={verdict.named} newly failing "
                f"{verdict.newly_failing} ({verdict.seconds:.0f} s)"
            )
            verdicts.append(verdict)
    print(report(verdicts))
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(
            json.dumps(
                {
                    "scope": options.scope,
                    "workers": options.workers,
                    "baselines": {" ".join(k): asdict(v) for k, v in baselines.items()},
                    "mutants": [asdict(v) for v in verdicts],
                },
                indent=2,
                sort_keys=True,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
