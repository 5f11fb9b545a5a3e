"""The link-driven state machine: session -> task -> status -> stream -> cancel.

Schemathesis builds the rules from the OpenAPI ``links`` of the committed
contract, so requests carry real session and task IDs from earlier responses
and reach the states random IDs never do: queued, running and finished tasks,
their streams (checked by :mod:`harness.fuzz.sse`) and cancellations (409 once
ended). The server keeps its state between scenarios; nothing in a scenario
depends on another's, so no reset is needed in ``setup()``.
"""

from __future__ import annotations

from typing import Any

from hypothesis.errors import Flaky, FlakyFailure
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import CheckFunction
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.specs.openapi.schemas import OpenApiSchema

from harness.checks import RequirementFailure, leading_ids
from harness.fuzz.checks import validate
from harness.fuzz.runner import FuzzTarget, fuzz_settings

WORKFLOW_TAGS = ("sessions", "tasks")
"""The linked operations; pools, routing and health have no state to chain."""


def state_machine(schema: OpenApiSchema, target: FuzzTarget) -> type[APIStateMachine]:
    """A state machine class that sends to ``target`` and validates with our checks."""
    workflow = schema.include(tag=list(WORKFLOW_TAGS))
    # Valid inputs only: the stateless runs cover invalid ones, and an invalid
    # step ends a chain before it reaches a task's stream.
    workflow.config.generation.update(modes=[GenerationMode.POSITIVE])
    base = workflow.as_state_machine()

    class OrchQueueMachine(base):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return target.call_kwargs()

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: list[CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            __tracebackhide__ = True
            target.record(case, response)
            try:
                validate(case, response, recorder=self.recorder, **kwargs)
            except AssertionError as failure:
                target.failures.append(str(failure))
                raise

    return OrchQueueMachine


def run_stateful(
    schema: OpenApiSchema, target: FuzzTarget, *, scenarios: int, steps: int, explore: bool
) -> int:
    """Run ``scenarios`` sequences of up to ``steps`` linked calls; returns calls sent.

    Hypothesis replays a failing scenario to report it, but a live server has
    moved on (new IDs, a task that has finished meanwhile), so the replay can
    take other links and Hypothesis calls the run flaky. The failure seen
    first is then the one raised: it happened, with its ORCH IDs and curl line.
    """
    machine = state_machine(schema, target)
    before = target.cases
    try:
        machine.run(settings=fuzz_settings(scenarios, explore=explore, steps=steps))
    except (Flaky, FlakyFailure) as flaky:
        if not target.failures:
            raise
        first = target.failures[0]
        raise RequirementFailure(
            f"{first}\n\n(the server answered the replay of this scenario "
            f"differently, so Hypothesis could not reproduce it: {type(flaky).__name__})",
            [i for line in first.split("\n\n", 1)[0].splitlines() for i in leading_ids(line)],
        ) from None
    return target.cases - before
