"""Schemathesis fuzzing of the committed OpenAPI contract against the target.

Every operation of ``contracts/openapi/orchqueue.yaml`` gets valid and invalid
inputs over real HTTP (the in-process orchestratord, or ``--orch-url`` with
``--orch-token``); every response must be a declared status with a declared
content type and a schema-valid body, never a 5xx, carry ``X-Request-Id``, use
the error envelope and kinds on 4xx/5xx and the backpressure headers on 429/503.
Then a state machine follows the contract's links (session -> task -> status ->
stream -> cancel) and checks each stream's SSE format, another runs a
definition the harness registered (session -> run -> status -> events -> abort),
and a third runs one whose first step waits at a checkpoint (session -> run ->
pending checkpoints -> decision -> audit).

Failures start with the ORCH IDs they break and end with a curl line.
Sizes: ``--orch-fuzz-examples``, ``--orch-fuzz-scenarios``, ``--orch-fuzz-steps``;
``--orch-fuzz-explore`` for new random cases instead of the reproducible ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness.fuzz import requirements as req
from harness.fuzz.document import contract_path, operations

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiSchema

    from harness.fuzz.plugin import FuzzOptions
    from harness.fuzz.runner import FuzzClient
    from harness.plugin.target import Target

pytestmark = pytest.mark.fuzz


def _operation_params() -> list[object]:
    params: list[object] = []
    for operation_id, method, path in operations(contract_path()):
        ids = sorted({*req.COMMON, *req.RESPONSE_SHAPES.get(operation_id, ())})
        params.append(
            pytest.param(
                operation_id, id=f"{operation_id}:{method} {path}", marks=pytest.mark.req(*ids)
            )
        )
    return params


@pytest.fixture
def fuzz_target(orch_target: Target) -> Iterator[FuzzClient]:
    from harness.fuzz.runner import FuzzClient

    target = FuzzClient(orch_target.url, headers=orch_target.auth_headers())
    yield target
    target.close()


@pytest.mark.parametrize("operation_id", _operation_params())
def test_operation_meets_contract(
    operation_id: str, fuzz_target: FuzzClient, orch_fuzz_options: FuzzOptions
) -> None:
    """Valid and invalid inputs to one operation: every response within the contract."""
    from harness.fuzz.runner import fuzz_operation, load_contract

    schema = load_contract(orch_fuzz_options.contract)
    fuzz_operation(
        schema,
        operation_id,
        fuzz_target,
        examples=orch_fuzz_options.examples,
        explore=orch_fuzz_options.explore,
    )


def _walk_until(
    workflow: OpenApiSchema,
    target: FuzzClient,
    options: FuzzOptions,
    operation: str,
    unchecked: str,
) -> None:
    """Walk ``workflow``'s links until ``operation`` answered 200; else fail with
    ``unchecked`` (its ORCH IDs first) and what the walk reached."""
    from harness.fuzz.stateful import run_stateful

    run_stateful(
        workflow,
        target,
        scenarios=options.scenarios,
        steps=options.steps,
        explore=options.explore,
        until=(operation, 200),
    )
    reached = sorted(f"{op} {status}" for op, status in target.seen)
    hint = "raise --orch-fuzz-scenarios / --orch-fuzz-steps"
    if {status for _, status in target.seen} == {401}:
        hint = "every answer was 401 UNAUTHORIZED: give the target's --orch-token"
    assert target.seen[(operation, 200)] > 0, f"{unchecked}; reached: {reached} ({hint})"


@pytest.mark.slow
@pytest.mark.req(
    *sorted({*req.COMMON, *req.STREAM, *req.STREAM_DATA, *req.RESPONSE_SHAPES["createTask"]})
)
def test_linked_workflow_meets_contract(
    fuzz_target: FuzzClient, orch_fuzz_options: FuzzOptions
) -> None:
    """Sessions, tasks, their status, streams and cancels chained by the contract's links."""
    from harness.fuzz.runner import load_contract
    from harness.fuzz.stateful import task_workflow

    _walk_until(
        task_workflow(load_contract(orch_fuzz_options.contract)),
        fuzz_target,
        orch_fuzz_options,
        "streamTask",
        "ORCH-0070/ORCH-0071/ORCH-0072/ORCH-0073/ORCH-0081: the linked run never opened a task "
        "stream, so the stream format is unchecked",
    )


@pytest.mark.slow
@pytest.mark.orch_profile("runs")
@pytest.mark.req(
    *sorted(
        {
            *req.COMMON,
            *req.RUN_STREAM,
            *req.RUN_STREAM_DATA,
            *req.RESPONSE_SHAPES["createRun"],
            *req.RESPONSE_SHAPES["getRun"],
            *req.RESPONSE_SHAPES["abortRun"],
        }
    )
)
def test_linked_runs_workflow_meets_contract(
    fuzz_target: FuzzClient, orch_fuzz_options: FuzzOptions
) -> None:
    """Runs of a definition the harness registered, their status, event streams and aborts,
    chained by the contract's links from each new session."""
    from harness.fuzz.runner import load_contract
    from harness.fuzz.stateful import runs_workflow

    _walk_until(
        runs_workflow(load_contract(orch_fuzz_options.contract), fuzz_target),
        fuzz_target,
        orch_fuzz_options,
        "streamRun",
        "ORCH-0350/ORCH-0351/ORCH-0352: the linked run never opened a run's event stream, so "
        "its events are unchecked",
    )


@pytest.mark.slow
@pytest.mark.orch_profile("runs")
@pytest.mark.req(
    *sorted(
        {
            *req.COMMON,
            *req.RESPONSE_SHAPES["listApprovals"],
            *req.RESPONSE_SHAPES["decideCheckpoint"],
            *req.RESPONSE_SHAPES["getRunAudit"],
        }
    )
)
def test_linked_checkpoint_workflow_meets_contract(
    fuzz_target: FuzzClient, orch_fuzz_options: FuzzOptions
) -> None:
    """Runs waiting at a checkpoint, their pending checkpoints and decisions, chained by the
    contract's links from a run to its pending checkpoints to a decision."""
    from harness.fuzz.runner import load_contract
    from harness.fuzz.stateful import checkpoint_workflow

    _walk_until(
        checkpoint_workflow(load_contract(orch_fuzz_options.contract), fuzz_target),
        fuzz_target,
        orch_fuzz_options,
        "decideCheckpoint",
        "ORCH-0366: the linked run never decided a pending checkpoint, so the decision's "
        "answer is unchecked",
    )
