"""SQLite commits per streaming workload: what durability-before-visibility costs in commits.

    .venv/bin/python -m bench.tools.stream_commits
    PYTHONPATH=<other tree> .venv/bin/python bench/tools/stream_commits.py  # that tree's

Runs bench_stream's two workloads (one 4096-token stream; 100 streams of 1000
tokens, all at once) against an in-process orchestratord with bench_stream's
pool (2 zero-delay replicas x 64 slots) and counts the ``COMMIT`` statements of
its connection while they run. Counts vary a little with timing (a commit
closes a loop turn), not with the host's speed the way throughput does; the
throughput side is ``bench.bench_stream --against REV``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time

import httpx

from orchestrator.config import Config, parse_config
from orchestrator.server import ServerThread

WORKLOADS = ((1, 4096), (100, 1000))
"""(streams, tokens each), as in bench_stream."""


def _config(database: str) -> Config:
    replicas = [{"replica_id": f"r{i}", "slots": 64} for i in (1, 2)]
    pools = [{"pool_id": "default", "queue_capacity": 100_000, "replicas": replicas}]
    return parse_config({"database": database, "pools": pools})


async def _stream_all(url: str, session_id: str, streams: int, tokens: int) -> None:
    async def one(posts: httpx.AsyncClient, gets: httpx.AsyncClient, seed: int) -> None:
        params = {"seed": seed, "determinism": "strict"}
        body = {"session_id": session_id, "prompt": "p", "max_tokens": tokens, "params": params}
        admitted = await posts.post("/v1/tasks", json=body)
        admitted.raise_for_status()
        async with gets.stream("GET", admitted.json()["stream_url"]) as response:
            async for _ in response.aiter_raw():
                pass

    limits = httpx.Limits(max_connections=streams + 8)
    fresh = httpx.Limits(max_connections=streams + 8, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as posts,
        httpx.AsyncClient(base_url=url, timeout=120, limits=fresh) as gets,
    ):
        await asyncio.gather(*(one(posts, gets, seed) for seed in range(streams)))


def commits(streams: int, tokens: int) -> int:
    """Commits while ``streams`` tasks of ``tokens`` tokens are admitted and streamed."""
    with tempfile.TemporaryDirectory() as tmp, ServerThread(_config(f"{tmp}/orchq.db")) as server:
        store = server.app.state.orchestrator.store
        counted = [0]
        lock = threading.Lock()

        def trace(statement: str) -> None:
            if statement == "COMMIT":
                with lock:
                    counted[0] += 1

        with httpx.Client(base_url=server.url, timeout=60) as http:
            session_id = http.post("/v1/sessions", json={}).json()["session_id"]
        # The store's connection (a white-box hook: SQLite's trace callback).
        server.call(lambda: store._connection.set_trace_callback(trace))
        asyncio.run(_stream_all(server.url, session_id, streams, tokens))
        time.sleep(0.3)  # the last outcomes' commits
        server.call(lambda: store._connection.set_trace_callback(None))
        return counted[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    for streams, tokens in WORKLOADS:
        print(f"{streams} x {tokens} tokens: {commits(streams, tokens)} commits")


if __name__ == "__main__":
    main()
