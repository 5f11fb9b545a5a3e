"""Shared client side of the benchmarks that drive ``orchq serve`` over its HTTP API.

Plain ``httpx.AsyncClient`` calls, so every benchmark speaks to the server as any
client does: an answer of another status than expected raises with its body, and
server timestamps (RFC 3339, millisecond resolution) read as epoch milliseconds,
the unit every latency of these benchmarks is computed in.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

POLL_S = 0.01
"""How often a benchmark polls the server for the end of what it waits for."""


def stamp_ms(value: str) -> float:
    """A server timestamp as epoch milliseconds."""
    return datetime.fromisoformat(value).timestamp() * 1000.0


def expect(response: httpx.Response, status: int, what: str) -> Any:
    """``response``'s JSON when its status is ``status``; else raise naming ``what``."""
    if response.status_code != status:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:300]}")
    return response.json()


async def open_session(http: httpx.AsyncClient) -> str:
    created = await http.post("/v1/sessions", json={"ttl_seconds": 3600})
    return str(expect(created, 201, "session")["session_id"])


async def register(http: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    expect(await http.post("/v1/definitions", json=definition), 201, "definition")


async def until_no_run_running(http: httpx.AsyncClient) -> None:
    """Return once ``GET /v1/runs?state=running`` lists none, polling every :data:`POLL_S`."""
    while True:
        page = await http.get("/v1/runs", params={"state": "running", "limit": 1})
        if not expect(page, 200, "GET /v1/runs")["runs"]:
            return
        await asyncio.sleep(POLL_S)


async def completed_runs(http: httpx.AsyncClient, run_ids: list[str]) -> list[dict[str, Any]]:
    """``GET /v1/runs/{id}`` of each run, in order; raise unless every one ``completed``."""
    answers = await asyncio.gather(*(http.get(f"/v1/runs/{run_id}") for run_id in run_ids))
    runs = [expect(answer, 200, "GET run") for answer in answers]
    failed = [run for run in runs if run["state"] != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not complete, e.g. {failed[0]}")
    return runs
