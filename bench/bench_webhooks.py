"""Webhook delivery throughput: orchestratord's sender against a bare client, to one receiver.

    .venv/bin/python -m bench.bench_webhooks [--runs 200] [--concurrency 32] [--rounds 3]

The receiver is the harness's (:class:`harness.webhooks.Receiver`, what the
``orch_webhook_receiver`` fixture runs): a real HTTP server on loopback, in this
process, that verifies every request's signature (ORCH-0417) and records it. A
fresh one serves each side of each round. The work is ``--runs`` runs of a
2-step chain (``a``, then ``b``), 6 run events each (``run.started``, a
``step.started`` and a ``step.succeeded`` a step, ``run.completed``). Two sides:

- ``orchestratord``: a fresh ``orchq serve`` on ``bench/configs/runs.yaml``
  (two zero-delay mock replicas) with one subscription to every event
  (``["*"]``) naming the receiver; the runs are created at once, and the server
  delivers each event as a signed POST (spec section 12.9), one at a time per
  run, at most 32 attempts in flight (orchestratord's bound). Done when the
  receiver has accepted every event of every run.
- ``baseline``: the same number of signed POSTs, shaped as those deliveries
  (same events, same bodies' keys, signed as ORCH-0410 says), sent by a bare
  ``httpx.AsyncClient`` in a process of its own: one lane a run, each lane's
  POSTs one at a time, at most ``--concurrency`` in flight. The receiver's
  ceiling: what it accepts when nothing but sending stands before it.

Figures: deliveries per second, the count over the time from the first event's
commit (a delivery's ``created_at``, written with the event, ORCH-0406) or the
baseline's first send to the receiver's last record; and "event -> received",
per delivery, from that commit (or that send) to its record, p50 and p99. The
baseline's clock starts when it sends, so its latency is the transport's alone,
the floor; orchestratord's also holds the wait behind the earlier deliveries of
its run (ORCH-0415) and for a place among the attempts in flight. Server
timestamps have millisecond resolution; the receiver's arrival times are read
on this machine's clock. Rounds alternate which side goes first; figures are
medians of rounds, the ratio is of the medians of deliveries per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench._api import (
    completed_runs,
    expect,
    open_session,
    register,
    stamp_ms,
    until_no_run_running,
)
from bench._common import (
    PYTHON,
    ROOT,
    Figures,
    percentile,
    running,
    side_by_side,
    sides_table,
    write_json,
)
from harness.webhooks import Received, Receiver
from orchestrator.webhooks import delivery_body, signed_headers

CONFIG = "runs.yaml"
RUNS = 200
CONCURRENCY = 32
"""The baseline's POSTs in flight: orchestratord's own bound on attempts in flight."""
TOKENS = 4
DEFINITION = "bench-hooked"
STEPS = ("a", "b")
EVENTS_PER_RUN = 2 + 2 * len(STEPS)
"""``run.started``, ``step.started`` and ``step.succeeded`` a step, ``run.completed``."""
SIDES = ("orchestratord", "baseline")
WAIT_S = 300.0
MAX_ATTEMPTS = 8
"""The baseline's attempts of one delivery at most: orchestratord's default (ORCH-0414)."""
_SECRET_ENV = "BENCH_WEBHOOK_SECRET"


@dataclass
class SideResult:
    deliveries_per_s: float
    latency_ms: list[float]
    """One per delivery: the event's commit (the baseline: its send) to the receiver's record."""
    retried: int
    """Deliveries that took more than one attempt (a connection the receiver reset)."""


def _definition() -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for step in STEPS:
        needs = [steps[-1]["id"]] if steps else []
        steps.append({"id": step, "prompt": "hello", "max_tokens": TOKENS, "depends_on": needs})
    return {"name": DEFINITION, "version": "1", "steps": steps}


def _lane(run_no: int) -> list[tuple[str, bytes]]:
    """The baseline's deliveries of run ``run_no``: ``(delivery id, body)``, in event order."""
    run_id = f"run_bench_{run_no:06d}"
    events: list[tuple[str, dict[str, Any]]] = [
        ("run.started", {"run_id": run_id, "definition": DEFINITION, "version": "1", "seed": 7})
    ]
    for n, step in enumerate(STEPS, start=1):
        task_id = f"tsk_bench_{run_no:06d}_{n}"
        events.append(("step.started", {"step_id": step, "attempt": 1, "task_id": task_id}))
        output = {"step_id": step, "task_id": task_id, "output": "tok0 tok1 tok2 tok3"}
        events.append(("step.succeeded", output))
    events.append(("run.completed", {"run_id": run_id}))
    lane = []
    for event_id, (event, data) in enumerate(events, start=1):
        delivery_id = f"dlv_bench_{run_no:06d}_{event_id}"
        lane.append((delivery_id, delivery_body(delivery_id, event, run_id, event_id, data)))
    return lane


async def _send_all(url: str, secret: str, runs: int, concurrency: int) -> dict[str, Any]:
    """Send every run's lane to ``url``.

    ``{"sent": {delivery id: epoch ms of its first send}, "retried": deliveries
    sent again}``: an attempt that fails on the connection is sent again at
    once, signed afresh, up to :data:`MAX_ATTEMPTS` attempts (orchestratord
    waits a backoff in between, ORCH-0414; the ceiling does not).
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    slots = asyncio.Semaphore(concurrency)
    sent: dict[str, float] = {}
    retried: set[str] = set()
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

        async def attempt(delivery_id: str, body: bytes) -> httpx.Response:
            for attempt_no in range(1, MAX_ATTEMPTS + 1):
                headers = signed_headers(secret, delivery_id, int(time.time()), body)
                try:
                    return await client.post(url, content=body, headers=headers)
                except httpx.TransportError:
                    if attempt_no == MAX_ATTEMPTS:
                        raise
                    retried.add(delivery_id)
            raise AssertionError("unreachable")

        async def lane(run_no: int) -> None:
            for delivery_id, body in _lane(run_no):  # one at a time, as ORCH-0415 asks
                async with slots:
                    sent[delivery_id] = time.time() * 1000.0
                    answer = await attempt(delivery_id, body)
                if answer.status_code != 200:
                    raise RuntimeError(
                        f"the receiver answered {answer.status_code} to {delivery_id}"
                    )

        await asyncio.gather(*(lane(run_no) for run_no in range(runs)))
    return {"sent": sent, "retried": len(retried)}


def _accepted(receiver: Receiver, expected: int) -> list[Received]:
    """The receiver's accepted deliveries once ``expected`` arrived; raise when they do not."""
    arrived = receiver.wait_until(
        lambda records: sum(r.verdict == "accepted" for r in records) >= expected, WAIT_S
    )
    receiver.assert_all_verified()
    accepted = receiver.accepted()
    if not arrived or len(accepted) != expected:
        raise RuntimeError(f"the receiver accepted {len(accepted)} deliveries, not {expected}")
    return accepted


def _wall_ms(record: Received, offset_s: float) -> float:
    return (record.at + offset_s) * 1000.0


async def _deliveries(http: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    """Every delivery of the subscription; raise unless each is ``delivered``."""
    deliveries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        answer = await http.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params)
        page = expect(answer, 200, "GET deliveries")
        for delivery in page["deliveries"]:
            if delivery["state"] != "delivered":
                raise RuntimeError(f"a delivery was not delivered: {delivery}")
            deliveries.append(delivery)
        if page["next_cursor"] is None:
            return deliveries
        params["cursor"] = page["next_cursor"]


async def _orchestratord_side(url: str, receiver: Receiver, runs: int) -> SideResult:
    offset_s = time.time() - time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        subscription = {"url": receiver.url, "events": ["*"], "secret": receiver.secret}
        hook = expect(await http.post("/v1/webhooks", json=subscription), 201, "POST /v1/webhooks")
        await register(http, _definition())
        body = {"session_id": await open_session(http), "definition": DEFINITION, "version": "1"}
        created = await asyncio.gather(*(http.post("/v1/runs", json=body) for _ in range(runs)))
        run_ids = [str(expect(answer, 202, "POST /v1/runs")["run_id"]) for answer in created]
    accepted = await asyncio.to_thread(_accepted, receiver, runs * EVENTS_PER_RUN)
    # A fresh client: the first one's connections sat idle past the server's keep-alive.
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:
        await until_no_run_running(http)
        await completed_runs(http, run_ids)
        deliveries = await _deliveries(http, hook["webhook_id"])
    committed = {d["delivery_id"]: stamp_ms(d["created_at"]) for d in deliveries}
    retried = sum(d["attempts"] > 1 for d in deliveries)
    return _figures(accepted, committed, offset_s, retried)


def _baseline_side(receiver: Receiver, runs: int, concurrency: int) -> SideResult:
    offset_s = time.time() - time.monotonic()
    argv = [PYTHON, "-m", "bench.bench_webhooks", "--send-to", receiver.url]
    argv += ["--runs", str(runs), "--concurrency", str(concurrency)]
    env = {**os.environ, _SECRET_ENV: receiver.secret}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT_S)
    if done.returncode != 0:
        raise RuntimeError(f"the baseline sender failed ({done.returncode}): {done.stderr[-500:]}")
    report = json.loads(done.stdout)
    accepted = _accepted(receiver, runs * EVENTS_PER_RUN)
    return _figures(accepted, report["sent"], offset_s, report["retried"])


def _figures(
    accepted: list[Received], began_ms: dict[str, float], offset_s: float, retried: int
) -> SideResult:
    """Throughput and latency of ``accepted``, each delivery timed from ``began_ms`` of its id."""
    if {r.delivery_id for r in accepted} != set(began_ms):
        raise RuntimeError("the receiver's deliveries are not those the sender made")
    received = {str(r.delivery_id): _wall_ms(r, offset_s) for r in accepted}
    latency = [received[delivery_id] - began for delivery_id, began in began_ms.items()]
    window_s = (max(received.values()) - min(began_ms.values())) / 1000.0
    return SideResult(len(accepted) / window_s, latency, retried)


def one_side(side: str, runs: int, concurrency: int) -> SideResult:
    """Side ``side`` once, with a fresh receiver (and, for orchestratord, a fresh server)."""
    with Receiver() as receiver:
        if side == "baseline":
            return _baseline_side(receiver, runs, concurrency)
        with running("orchq", CONFIG) as server:
            return asyncio.run(_orchestratord_side(server.url, receiver, runs))


def bench(rounds: int = 3, runs: int = RUNS, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    def measure(side: str) -> Figures:
        result = one_side(side, runs, concurrency)
        return {
            "deliveries_per_s": result.deliveries_per_s,
            "latency_p50_ms": percentile(result.latency_ms, 0.50),
            "latency_p99_ms": percentile(result.latency_ms, 0.99),
            "retried": result.retried,
        }

    def describe(figures: Figures) -> str:
        return (
            f"{figures['deliveries_per_s']:,.1f} deliveries/s, "
            f"event -> received p50 {figures['latency_p50_ms']:.1f} ms, "
            f"p99 {figures['latency_p99_ms']:.1f} ms, {figures['retried']:.0f} deliveries retried"
        )

    per_round, summary = side_by_side("webhooks", SIDES, rounds, measure, describe)
    ours, ceiling = summary["orchestratord"], summary["baseline"]
    return {
        "params": {
            "rounds": rounds,
            "runs": runs,
            "deliveries": runs * EVENTS_PER_RUN,
            "concurrency": concurrency,
            "tokens": TOKENS,
        },
        "rounds": per_round,
        "summary": summary,
        "ratio_deliveries_per_s": ours["deliveries_per_s"] / ceiling["deliveries_per_s"],
    }


def render(result: dict[str, Any]) -> str:
    p = result["params"]
    labels = {"orchestratord": "orchestratord", "baseline": "bare httpx client (ceiling)"}
    corner = f"{p['deliveries']} deliveries of {p['runs']} runs"
    columns = [
        ("event (baseline: send) -> received p50 ms", "latency_p50_ms", 1),
        ("p99 ms (median)", "latency_p99_ms", 1),
        ("deliveries retried", "retried", 0),
    ]
    ratio = (
        f"deliveries/s, orchestratord over the bare client: {result['ratio_deliveries_per_s']:.2f}x"
    )
    return sides_table(
        result, labels, corner, ("deliveries/s", "deliveries_per_s", 1), columns, ratio
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit 0 when both sides ran every round."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=RUNS, help="Runs at once, 6 events each.")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help="The baseline's POSTs in flight."
    )
    parser.add_argument("--json", default=None, help="Also write the results here.")
    # The baseline's sender, a process of its own: prints each delivery's send time.
    parser.add_argument("--send-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.concurrency < 1:
        parser.error("--runs and --concurrency must be at least 1")
    if args.send_to:
        sent = asyncio.run(
            _send_all(args.send_to, os.environ[_SECRET_ENV], args.runs, args.concurrency)
        )
        print(json.dumps(sent))
        return 0
    result = bench(args.rounds, args.runs, args.concurrency)
    print(render(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
