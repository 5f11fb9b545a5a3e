"""What the API says happened, as ground truth for the checkpoint and webhook metrics.

The harness cannot tell which of a target's checkpoints or webhook deliveries
are its own from ``/metrics`` (their metrics carry no run or subscription ID,
ORCH-0420), so it counts every one the API shows, read in full (every page):
``GET /v1/approvals`` for checkpoints, each subscription's delivery log for
deliveries. Two readings around a workload give what the metrics must have
made meanwhile, whoever caused it; :func:`stable_scrape` takes a scrape that a
reading on each side of it agrees with, so nothing moved while it was taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from harness.checks import expect
from harness.metrics.exposition import Exposition
from harness.wire import Wire, parse_rfc3339

__all__ = [
    "Delivery",
    "attempt_outcomes",
    "checkpoints",
    "deliveries",
    "stable_scrape",
    "wait_seconds",
]

Reading = TypeVar("Reading")

STABLE_TRIES = 20


def _pages(wire: Wire, path: str, key: str, req: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a paged list (``next_cursor``, ORCH-0323), 100 a page."""
    cursor: str | None = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        response = wire.http.get(path, params=query)
        expect(
            response.status_code == 200,
            f"{req}: GET {path} must answer 200; got {response.status_code}: {response.text[:300]}",
        )
        page = response.json()
        yield from page.get(key, [])
        cursor = page.get("next_cursor")
        if not cursor:
            return


def checkpoints(wire: Wire, state: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every checkpoint in ``state``, by ``(run_id, checkpoint_id)`` (ORCH-0365)."""
    return {
        (a["run_id"], a["checkpoint_id"]): a
        for a in _pages(wire, "/v1/approvals", "approvals", "ORCH-0365", state=state)
    }


def wait_seconds(approval: dict[str, Any]) -> float:
    """From a decided checkpoint's ``requested_at`` to its ``decided_at``, in seconds."""
    requested = parse_rfc3339(approval["requested_at"], "ORCH-0365", "requested_at")
    decided = parse_rfc3339(approval["decided_at"], "ORCH-0365", "decided_at")
    return (decided - requested).total_seconds()


@dataclass(frozen=True)
class Delivery:
    attempts: int
    state: str


def deliveries(wire: Wire) -> dict[str, Delivery]:
    """Every delivery of every subscription, by ``delivery_id`` (ORCH-0403, ORCH-0407)."""
    out: dict[str, Delivery] = {}
    for webhook in _pages(wire, "/v1/webhooks", "webhooks", "ORCH-0403"):
        path = f"/v1/webhooks/{webhook['webhook_id']}/deliveries"
        for d in _pages(wire, path, "deliveries", "ORCH-0407"):
            out[d["delivery_id"]] = Delivery(int(d["attempts"]), str(d["state"]))
    return out


def attempt_outcomes(before: dict[str, Delivery], after: dict[str, Delivery]) -> dict[str, int]:
    """The attempts that ended between two readings, by outcome (ORCH-0420): a delivery's
    last new attempt ``delivered`` or ``failed`` when it ended so, every other ``retried``."""
    outcomes = {"delivered": 0, "retried": 0, "failed": 0}
    for delivery_id, now in after.items():
        made = now.attempts - (before[delivery_id].attempts if delivery_id in before else 0)
        if made <= 0:
            continue
        ended = now.state in ("delivered", "failed")
        if ended:
            outcomes[now.state] += 1
        outcomes["retried"] += made - 1 if ended else made
    return outcomes


def stable_scrape(
    scrape: Callable[[], Exposition], read: Callable[[], Reading], req: str, what: str
) -> tuple[Exposition, Reading]:
    """A scrape and ``read()`` that gave the same reading just before and just after it."""
    for _ in range(STABLE_TRIES):
        first = read()
        expo = scrape()
        if read() == first:
            return expo, first
        time.sleep(0.05)
    raise AssertionError(f"{req}: {what} kept changing over {STABLE_TRIES} scrapes")
