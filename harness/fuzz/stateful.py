"""The link-driven state machines: session -> task -> status -> stream -> cancel,
session -> run -> status -> events -> abort, and session -> run -> pending checkpoints
-> decision -> audit.

Schemathesis builds the rules from the OpenAPI ``links`` of the committed
contract, so requests carry real session, task and run IDs from earlier responses
and reach the states random IDs never do: queued, running and finished tasks,
their streams (checked by :mod:`harness.fuzz.sse`) and cancellations (409 once
ended); runs, their event streams and aborts. A run needs a definition that is
valid beyond what a JSON Schema states (ORCH-0305..0309), which a random walk
rarely writes: the runs workflows start from one the harness registers through
the public API first, linked from each new session (:func:`runs_workflow`,
:func:`checkpoint_workflow`, whose runs wait at a checkpoint). The
server keeps its state between scenarios; nothing in a scenario depends on
another's, so no reset is needed in ``setup()``.
"""

from __future__ import annotations

import copy
from typing import Any

import hypothesis
import schemathesis
from hypothesis.errors import Flaky, FlakyFailure
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import CheckFunction
from schemathesis.generation.stateful.state_machine import APIStateMachine
from schemathesis.specs.openapi.schemas import OpenApiSchema

from harness.checks import RequirementFailure, leading_ids, named_ids
from harness.fuzz.checks import validate
from harness.fuzz.config import schemathesis_config
from harness.fuzz.runner import REQUEST_TIMEOUT_S, FuzzClient, fuzz_settings

MAX_ROUNDS = 4
"""Most rounds of ``scenarios`` scenarios a run with ``until`` takes to reach its operation."""

WORKFLOW_TAGS = ("sessions", "tasks")
"""The linked operations; pools, routing and health have no state to chain."""
OTHER_TAGS = ("pools", "admin", "health", "runs", "webhooks")
"""Every other tag of the contract. They are excluded by name: ``include(tag=...)``
keeps every operation of this contract (seen with Schemathesis 4.32), and each
operation the walk may take makes it less likely to reach a task's stream. Runs
chain through a definition the harness registers, in a workflow of their own
(:data:`RUN_WORKFLOW`); the webhooks' operations, which only report runs, are fuzzed
one by one."""

RUN_WORKFLOW = (
    "createSession",
    "registerDefinition",
    "getDefinition",
    "createRun",
    "getRun",
    "listRuns",
    "streamRun",
    "abortRun",
)
"""The operations of the runs workflow: a session, definitions, and runs of one."""

FUZZ_DEFINITION: dict[str, Any] = {
    "name": "orchq-fuzz-chain",
    "version": "1",
    "steps": [
        {"id": "a", "prompt": "hello", "max_tokens": 2},
        {"id": "b", "prompt": "{{ steps.a.output }}", "max_tokens": 2, "depends_on": ["a"]},
    ],
}
"""The definition each new session of the runs workflow starts runs of: ``b`` waits for ``a``."""

CHECKPOINT_WORKFLOW = (
    "createSession",
    "createRun",
    "getRun",
    "listApprovals",
    "decideCheckpoint",
    "getRunAudit",
    "abortRun",
)
"""The operations of the checkpoint workflow: runs paused at a checkpoint, their pending
checkpoints, decisions, audit logs and aborts. Not their event streams: a stream stays
open while its run waits for a decision."""

FUZZ_GATE_DEFINITION: dict[str, Any] = {
    "name": "orchq-fuzz-gate",
    "version": "1",
    "steps": [
        {"id": "a", "prompt": "hello", "max_tokens": 2, "checkpoint": {"when": "before"}},
        {"id": "b", "prompt": "{{ steps.a.output }}", "max_tokens": 2, "depends_on": ["a"]},
    ],
}
"""The definition of the checkpoint workflow's runs: ``a`` waits for a decision first."""

FUZZ_RUN_LINK = "CreateRunOfTheHarnessDefinition"
FUZZ_CONTINUE_LINK = "ContinueAtTheHarnessCheckpoint"


def task_workflow(schema: OpenApiSchema) -> OpenApiSchema:
    """Sessions and tasks (:data:`WORKFLOW_TAGS`)."""
    workflow = schema.exclude(tag=list(OTHER_TAGS))
    assert isinstance(workflow, OpenApiSchema)
    return workflow


def runs_workflow(schema: OpenApiSchema, target: FuzzClient) -> OpenApiSchema:
    """:data:`RUN_WORKFLOW` on the contract plus one link, ``createSession`` ->
    ``createRun`` of :data:`FUZZ_DEFINITION`, which this registers on ``target`` first
    (again: 200, ORCH-0313). The committed contract is not changed."""
    return _harness_definition_workflow(schema, target, FUZZ_DEFINITION, RUN_WORKFLOW)


def checkpoint_workflow(schema: OpenApiSchema, target: FuzzClient) -> OpenApiSchema:
    """:data:`CHECKPOINT_WORKFLOW` on the contract, runs of :data:`FUZZ_GATE_DEFINITION`
    linked from each new session as in :func:`runs_workflow`: each run waits at its
    checkpoint, found through the contract's links ``createRun`` -> ``listApprovals`` ->
    ``decideCheckpoint``.

    A random decision on a ``before`` checkpoint is mostly refused (``retry`` and ``skip``
    are not among its decisions, a ``prompt`` needs ``retry``): one more link decides
    ``continue``, so the walk also reaches the decision that moves the run on."""
    approvals = ("/v1/approvals", "get", "200")
    continue_link = {
        "operationId": "decideCheckpoint",
        "parameters": {
            "run_id": "$response.body#/approvals/0/run_id",
            "checkpoint_id": "$response.body#/approvals/0/checkpoint_id",
        },
        "requestBody": {"decision": "continue", "decided_by": "orchq-fuzz"},
    }
    return _harness_definition_workflow(
        schema,
        target,
        FUZZ_GATE_DEFINITION,
        CHECKPOINT_WORKFLOW,
        {approvals: {FUZZ_CONTINUE_LINK: continue_link}},
    )


Where = tuple[str, str, str]
"""A response of the contract: ``(path, method, status)``."""


def _harness_definition_workflow(
    schema: OpenApiSchema,
    target: FuzzClient,
    document: dict[str, Any],
    operation_ids: tuple[str, ...],
    links: dict[Where, dict[str, Any]] | None = None,
) -> OpenApiSchema:
    """``operation_ids`` of the contract, with the link ``createSession`` -> ``createRun``
    of ``document`` (registered on ``target`` first) and ``links``, named, by response."""
    response = target.session.post(
        target.url + "/v1/definitions",
        json=document,
        headers=target.headers,
        timeout=REQUEST_TIMEOUT_S,
    )
    if response.status_code not in (200, 201):
        raise RequirementFailure(
            f"ORCH-0312/ORCH-0313: POST /v1/definitions of a valid definition must answer 201 "
            f"(200 when registered before); got {response.status_code}: {response.text[:300]}",
            ("ORCH-0312", "ORCH-0313"),
        )
    run_link = {
        "operationId": "createRun",
        "requestBody": {
            "session_id": "$response.body#/session_id",
            "definition": document["name"],
            "version": document["version"],
            "inputs": {},
        },
    }
    linked_document = copy.deepcopy(schema.raw_schema)
    for (path, method, status), named in {
        ("/v1/sessions", "post", "201"): {FUZZ_RUN_LINK: run_link},
        **(links or {}),
    }.items():
        answer = linked_document["paths"][path][method]["responses"][status]
        answer.setdefault("links", {}).update(named)
    linked = schemathesis.openapi.from_dict(linked_document, config=schemathesis_config())
    others = [
        operation["operationId"]
        for methods in linked_document["paths"].values()
        for operation in methods.values()
        if isinstance(operation, dict) and operation.get("operationId") not in operation_ids
    ]
    workflow = linked.exclude(operation_id=others)
    assert isinstance(workflow, OpenApiSchema)
    return workflow


def state_machine(workflow: OpenApiSchema, target: FuzzClient) -> type[APIStateMachine]:
    """A state machine class over ``workflow`` that sends to ``target`` and validates with
    our checks."""
    # Valid inputs only: the stateless runs cover invalid ones, and an invalid
    # step ends a chain before it reaches a task's stream.
    workflow.config.generation.update(modes=[GenerationMode.POSITIVE])
    base = workflow.as_state_machine()

    class OrchQueueMachine(base):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return target.call_kwargs()

        def call(self, case: Case[Any], **kwargs: Any) -> Response:
            __tracebackhide__ = True
            try:
                response: Response = super().call(case, **kwargs)
            except Exception as error:
                failure = unanswered(case, error)
                target.failures.append(failure)
                raise RequirementFailure(failure, leading_ids(failure)) from error
            return response

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


def unanswered(case: Case[Any], error: Exception) -> str:
    """The failure of a request that got no whole answer (the connection broke off)."""
    operation = f"{case.method.upper()} {case.path}"
    cause = f"{type(error).__name__}: {error}"
    if case.path.endswith("/stream"):
        return (
            f"ORCH-0081: {operation}: the stream broke off before an `end` or `error` event "
            f"closed it ({cause})"
        )
    if case.path.endswith("/events"):
        return (
            f"ORCH-0352: {operation}: the run's stream broke off before its closing event ({cause})"
        )
    return f"{operation}: no whole answer ({cause})"


def run_stateful(
    workflow: OpenApiSchema,
    target: FuzzClient,
    *,
    scenarios: int,
    steps: int,
    explore: bool,
    until: tuple[str, int] | None = None,
) -> int:
    """Run ``scenarios`` sequences of up to ``steps`` linked calls of ``workflow``
    (:func:`task_workflow`, :func:`runs_workflow`, :func:`checkpoint_workflow`); returns
    calls sent.

    Without ``explore`` each round runs on a fixed seed (``hypothesis.seed`` on
    the machine class): Schemathesis builds the machine class at run time, so
    Hypothesis' derandomised seed, a digest of that class, would change with
    whatever else the process imported. With ``until`` (an ``(operationId,
    status)`` pair), further rounds on the next seeds run, at most
    :data:`MAX_ROUNDS` in all, until the run has reached it: a random walk
    along the links must not leave a whole operation unchecked by chance.

    Hypothesis replays a failing scenario to report it, but a live server has
    moved on (new IDs, a task that has finished meanwhile), so the replay can
    take other links and Hypothesis calls the run flaky. The failure seen
    first is then the one raised: it happened, with its ORCH IDs and curl line.
    A request that got no answer is such a failure too. When nothing failed,
    the same drift (a task ended meanwhile, a queue now full) can still make
    Hypothesis stop a round as flaky: the round ends and the next one runs.
    """
    machine = state_machine(workflow, target)
    before = target.cases
    for round_number in range(MAX_ROUNDS if until is not None else 1):
        if not explore:
            machine = hypothesis.seed(round_number)(machine)
        try:
            machine.run(settings=fuzz_settings(scenarios, explore=explore, steps=steps))
        except (Flaky, FlakyFailure) as flaky:
            if not target.failures:
                # Nothing failed: the server's state changed which links a scenario could
                # take, so Hypothesis' search of this round cannot go on. The next round
                # explores on.
                continue
            first = target.failures[0]
            raise RequirementFailure(
                f"{first}\n\n(the server answered the replay of this scenario "
                f"differently, so Hypothesis could not reproduce it: {type(flaky).__name__})",
                named_ids(first.split("\n\n", 1)[0]),
            ) from None
        if until is None or target.seen[until] > 0:
            break
    return target.cases - before
