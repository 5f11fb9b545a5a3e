"""The bare baseline the benchmarks compare orchestratord against.

A plain Starlette app (no FastAPI, no validation, no middleware) served with
the same uvicorn settings as orchestratord:

    python -m uvicorn baseline_app:app --app-dir bench --host 127.0.0.1 --port 0 \
        --loop uvloop --http httptools --workers 1 --no-access-log

- ``POST /v1/tasks``: decode the JSON body and do one SQLite insert (WAL,
  ``synchronous=NORMAL``, autocommit), answer 202 with a small JSON body,
  the same shape of work as an admission minus everything orchestratord adds.
- ``POST /v1/sessions``: a session id (no database work), so the benchmark
  clients can run unchanged against both servers.
- ``GET /v1/tasks/{id}/stream?n=N&chunk=K``: ``retry:``, ``started``, N
  ``token`` events and ``end``, pre-built and framed exactly like
  orchestratord's, written K events per write: the ceiling of SSE over this
  stack for the benchmark's client. Its ``started`` event names replica
  ``r1`` and ``r2`` in turn, so the determinism benchmark's client sees every
  seed served by both, as from a pool of two deterministic replicas.

``BENCH_BASELINE_DB`` names the database file (default: in memory);
``BENCH_BASELINE_CHUNK`` the default K (1).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

_DB_PATH = os.environ.get("BENCH_BASELINE_DB", ":memory:")
_DEFAULT_CHUNK = int(os.environ.get("BENCH_BASELINE_CHUNK", "1"))
_VOCABULARY = tuple(f" {a}{b}" for a in ("ka", "lo", "mi", "ne", "su") for b in ("ta", "ri", "po"))


class _State:
    db: sqlite3.Connection | None = None
    streams: int = 0


_state = _State()


def _db() -> sqlite3.Connection:
    assert _state.db is not None
    return _state.db


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    db = sqlite3.connect(_DB_PATH, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS tasks ("
        " task_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, prompt TEXT NOT NULL,"
        " max_tokens INTEGER NOT NULL, body TEXT NOT NULL)"
    )
    _state.db = db
    try:
        yield
    finally:
        db.close()
        _state.db = None


async def create_session(_request: Request) -> JSONResponse:
    return JSONResponse({"session_id": f"sess_{secrets.token_hex(12)}"}, status_code=201)


async def create_task(request: Request) -> JSONResponse:
    body = await request.json()
    task_id = f"task_{secrets.token_hex(12)}"
    max_tokens = int(body.get("max_tokens", 64))
    _db().execute(
        "INSERT INTO tasks VALUES (?, ?, ?, ?, ?)",
        (task_id, body["session_id"], body["prompt"], max_tokens, json.dumps(body)),
    )
    return JSONResponse(
        {
            "task_id": task_id,
            "session_id": body["session_id"],
            "state": "queued",
            "stream_url": f"/v1/tasks/{task_id}/stream?n={max_tokens}",
        },
        status_code=202,
        headers={"Location": f"/v1/tasks/{task_id}"},
    )


@lru_cache(maxsize=32)
def _events(n: int, replica_id: str) -> tuple[str, ...]:
    """``started``, n ``token`` events and ``end``, framed as orchestratord frames them."""

    def frame(seq: int, event: str, data: dict[str, object]) -> str:
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return f"id: {seq}\nevent: {event}\ndata: {payload}\n\n"

    out = [
        frame(
            1,
            "started",
            {
                "task_id": "task_baseline",
                "replica_id": replica_id,
                "engine": "mock",
                "engine_version": "mock-1",
                "seed": 0,
                "sampler_profile_version": "v1",
            },
        ),
    ]
    for i in range(n):
        token_id = (i * 7) % len(_VOCABULARY)
        out.append(
            frame(i + 2, "token", {"index": i, "text": _VOCABULARY[token_id], "token_id": token_id})
        )
    out.append(frame(n + 2, "end", {"tokens_out": n, "finish_reason": "length", "seed": 0}))
    return tuple(out)


async def stream_task(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "64"))
    chunk = max(1, int(request.query_params.get("chunk", str(_DEFAULT_CHUNK))))
    _state.streams += 1
    events = _events(n, "r1" if _state.streams % 2 else "r2")

    async def body() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        if chunk == 1:
            for event in events:
                yield event
        else:
            for start in range(0, len(events), chunk):
                yield "".join(events[start : start + chunk])

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


app = Starlette(
    routes=[
        Route("/v1/sessions", create_session, methods=["POST"]),
        Route("/v1/tasks", create_task, methods=["POST"]),
        Route("/v1/tasks/{task_id}/stream", stream_task, methods=["GET"]),
    ],
    lifespan=lifespan,
)
