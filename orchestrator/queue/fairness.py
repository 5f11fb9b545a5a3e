"""The fairness streak of a pool, derived after a restart from the dispatch history.

``PoolQueue`` keeps its streak (interactive dispatches in a row while batch
work waited) in memory, so that the dispatch path writes nothing for it. A
restart must not start a fresh window, or up to 2(N-1) interactive dispatches
in a row could happen while batch work waits (ORCH-0090 read across the
restart, with the queue restored per ORCH-0140). The streak is therefore
derived at recovery from rows the dispatch path writes anyway: the first
attempt of every task, whose stamp ``tasks.started_ms`` carries (see
:meth:`orchestrator.store.Store.recent_dispatches`).

Invariant: the derived streak is never below the one the process held (so the
window stays within N-1) and never above what the persisted record allows; it
is clamped to N-1. Why the derivation is exact, and which way it leans on
millisecond ties: docs/design/fairness-across-restarts.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.vocabulary import Priority


@dataclass(frozen=True)
class PastDispatch:
    """One persisted queue dispatch of a pool."""

    priority: Priority
    batch_waiting: bool
    """A batch task of the same pool was queued when this task was dispatched."""


def derive_streak(newest_first: Iterable[PastDispatch], batch_share_every: int) -> int:
    """The fairness streak after the given dispatches, newest first, clamped to N-1."""
    limit = batch_share_every - 1
    streak = 0
    for dispatch in newest_first:
        if streak >= limit or dispatch.priority == "batch" or not dispatch.batch_waiting:
            break
        streak += 1
    return min(streak, limit)
