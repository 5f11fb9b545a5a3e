"""Conformance: Hypothesis properties of the admission queue (in-process only).

A stateful machine admits, dispatches, completes, cancels and restarts over a
queue with a random capacity, overflow policy and fairness budget, and checks
FIFO per lane (ORCH-0088), interactive first (ORCH-0089), the batch share
(ORCH-0090), capacity and the reject/drop_lru boundary (ORCH-0094..0099),
queue positions (ORCH-0043), refusals leaving nothing behind (ORCH-0050),
exactly one terminal state (ORCH-0060, ORCH-0067) and restart recovery through
orchestratord's real store (ORCH-0137, ORCH-0140).

The queue comes from the ``orch_queue_factory`` fixture: orchestratord's
``PoolQueue`` here; a module that star-imports this one and redefines the
fixture checks another implementation (the self-tests plug mutants that way,
and redefine ``orch_queue_settings`` to skip shrinking).
It drives the implementation's code directly, so against ``--orch-url`` it
skips (a live server's queue is not reachable from here), and with
``--orch-serve-cmd`` it is deselected: the target may be any implementation. The
queue's rules are then judged over the wire by ``test_contract_queue``, against
the same reference model.

Deterministic by default (Hypothesis profile ``orchq``: derandomized, no example
database, bounded examples); ``--hypothesis-profile`` and ``--hypothesis-seed`` override it.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from harness.plugin.target import NOT_VERIFIABLE_LIVE, live_url
from harness.properties import QueueFactory, machine_settings, queue_machine
from harness.properties.profile import suite_settings

pytestmark = [pytest.mark.properties, pytest.mark.orch_reference_code]

IN_PROCESS_ONLY = (
    f"{NOT_VERIFIABLE_LIVE}: the queue properties drive an in-process queue implementation "
    "(orchestrator.queue.PoolQueue); a live target (--orch-url) exposes no queue to drive"
)


@pytest.fixture
def orch_queue_factory(request: pytest.FixtureRequest) -> QueueFactory:
    """The queue under test: ``factory(capacity, overflow_policy, batch_share_every)``."""
    if live_url(request.config) is not None:
        pytest.skip(IN_PROCESS_ONLY)
    from orchestrator.queue.admission import PoolQueue

    return PoolQueue


@pytest.fixture
def orch_queue_settings(request: pytest.FixtureRequest) -> settings:
    """Hypothesis settings of the machine: the ``orchq`` profile (derandomized, bounded),
    or the run's ``--hypothesis-profile``/``--hypothesis-seed``; shrinking failures."""
    return machine_settings(parent=suite_settings(request.config))


@pytest.mark.req(
    "ORCH-0043",
    "ORCH-0050",
    "ORCH-0060",
    "ORCH-0067",
    "ORCH-0088",
    "ORCH-0089",
    "ORCH-0090",
    "ORCH-0094",
    "ORCH-0095",
    "ORCH-0096",
    "ORCH-0097",
    "ORCH-0098",
    "ORCH-0099",
    "ORCH-0137",
    "ORCH-0140",
)
def test_queue_state_machine(
    orch_queue_factory: QueueFactory, orch_queue_settings: settings
) -> None:
    run_state_machine_as_test(queue_machine(orch_queue_factory), settings=orch_queue_settings)
