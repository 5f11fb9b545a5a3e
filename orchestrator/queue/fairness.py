"""The fairness streak of a pool, derived after a restart from the dispatch history.

``PoolQueue`` keeps its streak (interactive dispatches in a row while batch
work waited) in memory, so that the dispatch path writes nothing for it. A
restart must not start a fresh window, or up to 2(N-1) interactive dispatches
in a row could happen while batch work waits (ORCH-0090 read across the
restart, with the queue restored per ORCH-0140). The streak is therefore
derived at recovery from rows the dispatch path writes anyway: the first
attempt of every task, whose stamp ``tasks.started_ms`` carries (see
:meth:`orchestrator.store.Store.recent_dispatches`).

Why the derivation is exact, and which way it leans where it cannot be:

* A dispatch is a queue pop, and every pop that an observer can see has
  written its task's first attempt (retries and recovered tasks take slots
  through ``Pool.acquire``, never through the queue, and always write attempt
  2 or later). Runners start in pop order and write the attempt before their
  first ``await``, so attempt start order is dispatch order.
* The streak the queue kept is the run of most recent dispatches that were
  interactive while the batch lane was non-empty; it ends (going back in
  time) at a batch dispatch, or at an interactive dispatch made while no batch
  task was queued (both reset it to 0). :func:`derive_streak` applies exactly
  this rule to the persisted history, so with distinct timestamps it recovers
  the value the crashed process held, up to N-1 (all ``pop`` ever compares).
* Under-estimating would let the window exceed N-1 across the restart. The
  only pops the derivation cannot see are those whose attempt was never
  written (killed between the pop and the attempt row, or cancelled before
  the runner started): such a task is still ``queued`` in the database and is
  restored, or ended without ever starting, so it is not a dispatch in the
  record that ORCH-0090 is judged on, and the record's window stays <= N-1.
* Over-estimating would dispatch batch work before its turn (ORCH-0089). It
  can only come from millisecond ties: a batch task admitted in the same
  millisecond as an interactive dispatch is counted as waiting, and a batch
  and an interactive dispatch stamped in the same millisecond are ordered
  batch first. The persisted and API-visible timestamps (``created_at``,
  ``started_at``) cannot order such events either, so every derived value is
  one that the visible record allows; ties are read the way that keeps
  ORCH-0090's hard bound. The result is clamped to N-1, the most the queue
  ever needs.
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
