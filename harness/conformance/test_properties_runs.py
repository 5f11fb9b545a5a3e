"""Conformance: a Hypothesis state machine over random step graphs, on the wire (section 12).

Random acyclic definitions, some steps with checkpoints, some with one child run
or a fan-out of child runs, run with random ``max_parallel`` values, random
decisions and random aborts
(:mod:`harness.properties.runs_machine`); each run, once ended, must have
started no step before its dependencies ended (ORCH-0326), held ``max_parallel``
(ORCH-0327), completed only with every step succeeded (ORCH-0329), an abort
must have reached every step (ORCH-0324, ORCH-0325), a checkpoint must have
held its step and its run until decided, once (ORCH-0361, ORCH-0363, ORCH-0367,
ORCH-0370), the audit log must hold every decision in order (ORCH-0380,
ORCH-0381), a step with child runs must succeed only once all completed
(ORCH-0490), a fan-out must hold its ``max_parallel`` (ORCH-0487), and no child
may outlive its ended parent (ORCH-0492). Any target, in-process, ``--orch-url``
or ``--orch-serve-cmd``: the machine only talks HTTP.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from harness.properties.profile import suite_settings
from harness.properties.runs_machine import RunsMachine
from harness.wire import Wire

pytestmark = [pytest.mark.properties, pytest.mark.orch_profile("runs")]

EXAMPLES = 8
STEPS = 6


@pytest.mark.req(
    "ORCH-0324",
    "ORCH-0325",
    "ORCH-0326",
    "ORCH-0327",
    "ORCH-0329",
    "ORCH-0361",
    "ORCH-0363",
    "ORCH-0367",
    "ORCH-0370",
    "ORCH-0380",
    "ORCH-0381",
    "ORCH-0487",
    "ORCH-0490",
    "ORCH-0492",
)
def test_random_step_graphs_run_in_order_within_max_parallel(
    wire: Wire, request: pytest.FixtureRequest
) -> None:
    machine = type("Runs", (RunsMachine,), {"wire": wire})
    run_state_machine_as_test(
        machine,
        settings=settings(
            suite_settings(request.config),
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
