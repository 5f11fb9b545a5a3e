"""Shared plumbing of the benchmarks: servers as subprocesses, wrk, statistics.

Every server is a separate process on 127.0.0.1 with an ephemeral port and a
temporary database; the benchmark driver (this process) is the client, except
for the admission benchmark where ``wrk`` is. The baseline runs under
``uvicorn --loop uvloop --http httptools --workers 1 --no-access-log``;
``orchq serve`` builds its uvicorn server with the same http (httptools, via
"auto"), one process and no access log, on uvloop too (orchestrator/listeners.py).
``orchq+asyncio`` is the same command on the stdlib loop (bench/tools/serve_diag.py),
a diagnostic contender, like the other DIAG_KINDS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CONFIGS = BENCH_DIR / "configs"
WRK_DIR = BENCH_DIR / "wrk"
# Both contenders run on the interpreter that runs the benchmark (and its venv's
# orchq): a run from another venv measures that interpreter, for both alike.
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
ORCHQ = str(VENV_BIN / "orchq") if (VENV_BIN / "orchq").exists() else "orchq"

_URL = re.compile(r"(?:serving OrchQueue v1 on|Uvicorn running on) (http://127\.0\.0\.1:\d+)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Server:
    """A server subprocess; ``url`` is known once it printed its bound address."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def start(self, timeout_s: float = 30.0) -> Server:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        found = threading.Event()

        def drain() -> None:
            assert self.proc is not None
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                if not found.is_set():
                    match = _URL.search(line)
                    if match:
                        self.url = match.group(1)
                        found.set()
            found.set()

        threading.Thread(target=drain, name=f"drain-{self.name}", daemon=True).start()
        if not found.wait(timeout_s) or not self.url:
            self.stop()
            tail = "\n".join(self.output)
            raise RuntimeError(f"{self.name} did not start:\n{tail}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def tuned_config(
    config: str, workdir: Path, off: Sequence[str] = (), settings: dict[str, Any] | None = None
) -> Path:
    """bench/configs/``config``, with the optimisations named in ``off`` switched off.

    ``off`` names fields of the config's ``tuning`` section (orchestrator/config.py,
    ``Tuning``; docs/design/performance.md); ``settings`` overrides top-level keys.
    With neither, the file itself.
    """
    if not off and not settings:
        return CONFIGS / config
    raw = yaml.safe_load((CONFIGS / config).read_text(encoding="utf-8")) or {}
    raw.update(settings or {})
    raw.setdefault("tuning", {}).update({name: False for name in off})
    path = workdir / f"{Path(config).stem}-without-{'-'.join(off) or 'none'}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=True), encoding="utf-8")
    return path


def orchq_server(
    config: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    *,
    diag: bool = False,
    python: str | None = None,
    off: Sequence[str] = (),
) -> Server:
    """``orchq serve``; with ``diag`` the same command via bench/tools/serve_diag.py.

    ``extra_env``: added to the server's environment.

    ``python``: run it on that interpreter (``python -m harness serve``) instead of this venv's.
    ``off``: optimisations to switch off (:func:`tuned_config`).
    """
    db = workdir / "orchq.db"
    if diag:
        launcher = [python or PYTHON, "-m", "bench.tools.serve_diag"]
    elif python is not None:
        # -P: started in this repository, the server must still import PYTHONPATH's tree first.
        launcher = [python, "-P", "-m", "harness", "serve"]
    else:
        launcher = [ORCHQ, "serve"]
    argv = [*launcher, "--host", "127.0.0.1", "--port", "0", "--db", str(db)]
    argv += ["--config", str(tuned_config(config, workdir, off))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    return Server("orchq-diag" if diag else "orchq", argv, env, workdir)


DIAG_KINDS = {
    "orchq+asyncio": {"ORCHQ_DIAG_LOOP": "asyncio"},
    "orchq+gclog": {"ORCHQ_DIAG_GC_LOG": "1"},
    "orchq+nogc": {"ORCHQ_DIAG_NO_GC": "1", "ORCHQ_DIAG_GC_LOG": "1"},
    "orchq+asyncio+gclog": {"ORCHQ_DIAG_LOOP": "asyncio", "ORCHQ_DIAG_GC_LOG": "1"},
    "orchq+asyncio+nogc": {"ORCHQ_DIAG_LOOP": "asyncio", "ORCHQ_DIAG_NO_GC": "1"},
}
"""Diagnostic variants of ``orchq serve`` (bench/tools/serve_diag.py), by benchmark kind name."""


def baseline_server(workdir: Path, extra_env: dict[str, str] | None = None) -> Server:
    argv = [
        PYTHON,
        "-m",
        "uvicorn",
        "baseline_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "info",
    ]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BENCH_BASELINE_DB": str(workdir / "baseline.db"),
        **(extra_env or {}),
    }
    return Server("baseline", argv, env, workdir)


@contextlib.contextmanager
def running(
    kind: str,
    config: str = "",
    extra_env: dict[str, str] | None = None,
    *,
    python: str | None = None,
    off: Sequence[str] = (),
) -> Iterator[Server]:
    """A fresh server on a fresh temp database.

    ``kind``: ``orchq`` (``orchq serve`` with ``config``), a diagnostic variant
    from :data:`DIAG_KINDS` or ``baseline`` (bench/baseline_app.py). ``python``:
    the orchq kinds run on that interpreter instead of this one. ``off``: the
    optimisations the orchq kinds run without (:func:`tuned_config`).
    """
    with tempfile.TemporaryDirectory(prefix=f"orchq-bench-{kind.replace('+', '-')}-") as tmp:
        workdir = Path(tmp)
        if kind in DIAG_KINDS:
            env = {**DIAG_KINDS[kind], **(extra_env or {})}
            server = orchq_server(config, workdir, env, diag=True, python=python, off=off)
        elif kind == "orchq":
            server = orchq_server(config, workdir, extra_env, python=python, off=off)
        elif kind == "baseline":
            server = baseline_server(workdir, extra_env)
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """Commit ``rev`` checked out in a temporary git worktree, removed afterwards.

    Serve it with this venv's ``orchq`` and ``PYTHONPATH=<tree>``: that tree's
    ``orchestrator`` and ``harness`` are imported instead of this one's.
    """
    with tempfile.TemporaryDirectory(prefix="orchq-ab-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True
            )


@contextlib.contextmanager
def busy_neighbours(count: int) -> Iterator[None]:
    """``count`` CPU-bound processes beside the benchmark: a loaded host, reproducibly.

    The shared host runs the bare baseline anywhere from ~3,500 to ~7,500 req/s
    from one hour to the next. Two busy loops on the two cores bring it to the
    slow end on a quiet host, so a claim about the slow end can be checked on
    demand; both contenders run beside the same neighbours.
    """
    neighbours = [
        subprocess.Popen(
            [PYTHON, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for neighbour in neighbours:
            neighbour.kill()
            neighbour.wait(timeout=5)


# ---------------------------------------------------------------- wrk


def ensure_debian_tool(name: str) -> str:
    """The ``name`` binary; installed from Debian (``apt-get install -y name``) if missing."""
    found = shutil.which(name)
    if found:
        return found
    log(f"bench: {name} not found; installing it with apt-get")
    apt = ["apt-get", "install", "-y", "-q", name]
    if subprocess.run(apt, capture_output=True, text=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(apt, check=True, capture_output=True)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is still missing after apt-get install -y {name}")
    return found


def ensure_wrk() -> str:
    return ensure_debian_tool("wrk")


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    raw: str


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unparsable wrk latency {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(text: str) -> WrkResult:
    """Figures from the script's ``BENCH-JSON`` line, else from wrk's own report."""
    line = re.search(r"^BENCH-JSON (\{.*\})$", text, re.MULTILINE)
    if line:
        data = json.loads(line.group(1))
        duration = data["duration_us"] / 1e6
        failures = ", ".join(
            f"{k.removesuffix('_errors').removesuffix('s')} {data[k]}"
            for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
            if data[k]
        )
        return WrkResult(
            requests=data["requests"],
            duration_s=duration,
            rps=data["requests"] / duration,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            non_2xx=data["non_2xx"],
            socket_errors=failures,
            raw=text,
        )
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", text, re.MULTILINE))
    finished = re.search(r"^\s*(\d+) requests in ([\d.]+)(ms|s|m)", text, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    if not (len(latency) == 3 and finished and rps):
        raise ValueError(f"unparsable wrk output:\n{text}")
    duration = _ms(finished.group(2) + finished.group(3)) / 1000
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:(.*)$", text, re.MULTILINE)
    return WrkResult(
        requests=int(finished.group(1)),
        duration_s=duration,
        rps=float(rps.group(1)),
        p50_ms=_ms(latency["50"]),
        p90_ms=_ms(latency["90"]),
        p99_ms=_ms(latency["99"]),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
        raw=text,
    )


def run_wrk(
    url: str, script: Path, args: Sequence[str], *, threads: int, connections: int, duration_s: int
) -> WrkResult:
    argv = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    if result.requests > 0 and result.p99_ms <= 0:
        raise RuntimeError(f"wrk recorded no latencies:\n{done.stdout}")
    return result


# ---------------------------------------------------------------- pytest runs


def run_pytest_once(root: Path, extra: list[str]) -> tuple[float, float]:
    """(wall s, child CPU s) of a fresh ``python -m pytest -q -p no:cacheprovider`` in ``root``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"error: pytest failed ({result.returncode}): {result.stdout[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


# ---------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, nearest rank from below; NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Figures = dict[str, float]
"""One run of one side: figure name -> value."""


def side_by_side(
    name: str,
    sides: Sequence[str],
    rounds: int,
    measure: Callable[[str], Figures],
    describe: Callable[[Figures], str],
) -> tuple[dict[str, list[Figures]], dict[str, Figures]]:
    """Each side's figures round by round, and the median of each figure over the rounds.

    ``measure(side)`` runs ``side`` once; rounds alternate which side goes first.
    Each run is logged as ``<name> round <n> <side>: <describe(figures)>``.
    """
    per_round: dict[str, list[Figures]] = {side: [] for side in sides}
    for round_no in range(1, rounds + 1):
        for side in sides if round_no % 2 else sides[::-1]:
            figures = measure(side)
            per_round[side].append(figures)
            log(f"{name} round {round_no} {side}: {describe(figures)}")
    summary = {
        side: {key: median([r[key] for r in rounds_of]) for key in rounds_of[0]}
        for side, rounds_of in per_round.items()
    }
    return per_round, summary


def per_round_cell(rounds_of: Sequence[Figures], key: str, digits: int = 1) -> str:
    """Figure ``key`` of each round, in round order: ``a / b / c``."""
    return " / ".join(fmt(r[key], digits) for r in rounds_of)


def sides_table(
    result: dict[str, Any],
    labels: dict[str, str],
    corner: str,
    headline: tuple[str, str, int],
    columns: Sequence[tuple[str, str, int]],
    ratio: str,
) -> str:
    """The report of a :func:`side_by_side` result: a table of a row a side, then ``ratio``.

    ``labels`` names each side's row. ``headline`` (name, figure, digits) gives two
    columns, its median and its value round by round; each of ``columns`` (header,
    figure, digits) one, its median.
    """
    name, key, digits = headline
    rows = [
        [
            label,
            fmt(result["summary"][side][key], digits),
            per_round_cell(result["rounds"][side], key, digits),
            *(fmt(result["summary"][side][k], d) for _, k, d in columns),
        ]
        for side, label in labels.items()
    ]
    headers = [corner, f"{name} (median)", f"{name} per round", *(h for h, _, _ in columns)]
    return f"{table(headers, rows)}\n\n{ratio}"


def write_json(path: str | None, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` (a benchmark's ``--json``), when given."""
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _interpreter() -> str:
    path = Path(PYTHON)
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def machine_note() -> str:
    import platform

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()} ({_interpreter()}), load average before the run {load}"
    )


def code_note() -> str:
    """The commit measured, and whether orchestrator/ had uncommitted changes (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "orchestrator"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "commit unknown"
    changed = len(dirty.splitlines())
    return f"commit {head or '?'}" + (
        f" + uncommitted changes in {changed} files under orchestrator/" if changed else ""
    )
