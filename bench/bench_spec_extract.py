"""Benchmark ``orchq spec extract`` on a generated 10,000-requirement spec.

Budget: at most 1 s. The spec is generated in a temporary directory
with realistic structure (numbered sections, list items with anchored
requirements, prose paragraphs, inline code, a fenced block per section), an
index is extracted once so that every timed run also loads the previous index
(the steady state in CI, where tombstones are carried over), and then the
full command path (read + parse + lint + build + render + atomic write) is
timed five times; the median wall time is what the budget applies to (the
median CPU time is printed too: on a busy machine it shows what the command
itself costs). Side by side, run for run, the bare baseline reads the spec,
finds its anchors with one regular expression and writes the index back
unchanged: the ratio of the medians is what parsing, linting and building cost
over reading and writing the same files.

Run: ``.venv/bin/python -m bench.bench_spec_extract [--requirements N] [--runs K]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.trace.index import format_id
from harness.trace.index_file import write_text_atomic
from harness.trace.spec_extract import extract

_LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY")
BUDGET_S = 1.0
_ANCHOR = re.compile(r'<a id="(ORCH-\d+)"></a>')


def bare_baseline(spec: Path, index: Path) -> int:
    """Read the spec, find its anchors, write the index back: the floor under an extract."""
    found = len(_ANCHOR.findall(spec.read_text(encoding="utf-8")))
    write_text_atomic(index, index.read_text(encoding="utf-8"))
    return found


def generate_spec(requirements: int, per_section: int = 25) -> str:
    """A spec with ``requirements`` anchored normative sentences."""
    out = [
        "# Generated spec\n\n",
        "Non-normative introduction with `MUST` in code. It explains nothing, e.g. this.\n\n",
    ]
    for n in range(1, requirements + 1):
        if (n - 1) % per_section == 0:
            section = (n - 1) // per_section + 1
            out.append(f"## {section} Section {section}\n\n")
            out.append(
                "Some informative prose about this section. It spans two lines\n"
                "and has no keyword, only `code` and a [link](https://example.com/a.b).\n\n"
            )
            out.append('```json\n{"example": "The server MUST be ignored here."}\n```\n\n')
        req_id = format_id(n)
        level = _LEVELS[n % len(_LEVELS)]
        out.append(
            f'- <a id="{req_id}"></a>**{req_id}** — The server {level} handle case {n} of '
            f"`POST /v1/tasks` with 400 `INVALID_PARAMS` when the value is out of range. "
            f"This follows from the wire contract.\n"
        )
        if n % per_section == 0:
            out.append("\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "specs" / "orchestrator-spec.md"
        index = root / "requirements" / "index.yaml"
        spec.parent.mkdir(parents=True)
        spec.write_text(generate_spec(args.requirements), encoding="utf-8")
        lines = spec.read_text(encoding="utf-8").count("\n")

        t0 = time.perf_counter()
        first = extract(spec, index)
        write_text_atomic(index, first.text)
        cold = time.perf_counter() - t0

        timings: list[float] = []
        cpu: list[float] = []
        baseline: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            if bare_baseline(spec, index) != args.requirements:
                print("error: the baseline did not find every anchor", file=sys.stderr)
                return 1
            baseline.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            result = extract(spec, index)
            if result.stale:
                write_text_atomic(index, result.text)
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if result.stale:
                print("error: second extract was not byte-identical", file=sys.stderr)
                return 1
        median = statistics.median(timings)
        size_kib = index.stat().st_size / 1024

    print(
        f"spec extract: {args.requirements} requirements, {lines} lines, index {size_kib:.0f} KiB"
    )
    print(f"  first run (no index):     {cold * 1000:7.1f} ms")
    print(
        f"  median of {args.runs} (with index): {median * 1000:7.1f} ms "
        f"(min {min(timings) * 1000:.1f}, max {max(timings) * 1000:.1f}; budget "
        f"{BUDGET_S * 1000:.0f} ms)"
    )
    print(f"  median CPU time:          {statistics.median(cpu) * 1000:7.1f} ms")
    bare = statistics.median(baseline)
    print(
        f"  bare baseline (read, find anchors, write): {bare * 1000:.1f} ms; "
        f"ratio {median / bare:.1f}x"
    )
    if median > BUDGET_S:
        print("  OVER BUDGET", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
