"""Wire models of OrchQueue v1 (specs/orchestrator-spec.md): server, client and harness share them.

Request models refuse unknown fields and coerce nothing JSON would not; response
models describe exactly what the server sends, and generate the OpenAPI document.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from orchestrator.validators import JsonInt, JsonNumber, Text
from orchestrator.vocabulary import (
    RUN_EVENTS,
    AttemptState,
    AuditAction,
    CheckpointState,
    CheckpointWhen,
    Decision,
    DeclaredDecision,
    DeclaredWhen,
    DeliveryState,
    Determinism,
    FallbackMode,
    FanOutFailure,
    InputType,
    OnFailure,
    OverflowPolicy,
    Priority,
    ReplicaState,
    RunEvent,
    RunState,
    StepState,
    TaskState,
    WebhookSource,
)
from orchestrator.webhooks.subscriptions import (
    ALL_EVENTS,
    MAX_SECRET_CHARS,
    MAX_URL_CHARS,
    MIN_SECRET_CHARS,
    URL_PATTERN,
    check_events,
    check_url,
)

MAX_SEED = 2**63 - 1
MAX_METADATA_DEPTH = 32
"""How deeply session metadata may nest: deeper values would hit Python's recursion limit."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class SessionCreate(_Request):
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400), JsonInt] = 600
    metadata: dict[Annotated[Text, Field(max_length=256)], Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _metadata_is_text_safe(self) -> SessionCreate:
        _check_unicode(self.metadata, "metadata")
        return self


STRICT_NEEDS_SEED: dict[str, Any] = {
    "if": {"required": ["determinism"], "properties": {"determinism": {"const": "strict"}}},
    "then": {"required": ["seed"], "properties": {"seed": {"type": "integer"}}},
}
"""ORCH-0041 in JSON Schema: ``strict`` needs an integer ``seed`` (declared on ``TaskParams``)."""


class TaskParams(_Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra=STRICT_NEEDS_SEED)

    seed: Annotated[int, Field(ge=0, le=MAX_SEED), JsonInt] | None = None
    sampler_profile_version: Annotated[Text, Field(min_length=1, max_length=64)] = "v1"
    determinism: Determinism = "best_effort"
    temperature: Annotated[float, Field(ge=0.0, le=2.0), JsonNumber] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0), JsonNumber] = 1.0

    @model_validator(mode="after")
    def _strict_needs_seed(self) -> TaskParams:
        if self.determinism == "strict" and self.seed is None:
            raise ValueError("determinism 'strict' requires a seed")
        return self


class TaskCreate(_Request):
    session_id: Annotated[Text, Field(min_length=1, max_length=128)]
    prompt: Annotated[Text, Field(min_length=1, max_length=32_768)]
    priority: Priority = "interactive"
    pool: Annotated[Text, Field(min_length=1, max_length=64)] = "default"
    max_tokens: Annotated[int, Field(ge=1, le=4096), JsonInt] = 64
    params: TaskParams = Field(default_factory=TaskParams)


class RoutingUpdate(_Request):
    fallback_mode: FallbackMode


# ---------------------------------------------------------------- run definitions (section 12)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A definition's ``name`` and ``version`` (ORCH-0301)."""
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""A step id or an input name: what a template can name (ORCH-0302, ORCH-0303)."""
Identifier = Annotated[Text, Field(pattern=IDENTIFIER_PATTERN)]


class InputDeclaration(_Request):
    type: InputType
    required: StrictBool = True
    """A JSON boolean only: ``0`` and ``"true"`` are refused, as the JSON Schema says."""


class RetryPolicy(_Request):
    max_attempts: Annotated[int, Field(ge=1, le=10), JsonInt] = 1
    backoff_base_ms: Annotated[int, Field(ge=0, le=60_000), JsonInt] = 100
    backoff_cap_ms: Annotated[int, Field(ge=0, le=600_000), JsonInt] = 10_000
    jitter_ms: Annotated[int, Field(ge=0, le=60_000), JsonInt] = 0


class StepParams(_Request):
    """A step's sampling parameters: a task's (ORCH-0040), the seed derived when absent."""

    seed: Annotated[int, Field(ge=0, le=MAX_SEED), JsonInt] | None = None
    sampler_profile_version: Annotated[Text, Field(min_length=1, max_length=64)] = "v1"
    determinism: Determinism = "best_effort"
    temperature: Annotated[float, Field(ge=0.0, le=2.0), JsonNumber] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0), JsonNumber] = 1.0


DEFAULT_DECISIONS: dict[str, list[DeclaredDecision]] = {
    "before": ["continue", "abort"],
    "after": ["continue", "retry", "abort"],
}
"""The decisions a checkpoint allows when its definition does not say (ORCH-0360)."""


class CheckpointDeclaration(_Request):
    """A step's checkpoint (ORCH-0360): ``decisions`` filled in from ``when`` when absent."""

    when: DeclaredWhen
    decisions: Annotated[list[DeclaredDecision], Field(min_length=1, max_length=3)] | None = None

    @model_validator(mode="after")
    def _default_decisions(self) -> CheckpointDeclaration:
        if self.decisions is None:
            self.decisions = list(DEFAULT_DECISIONS[self.when])
        return self

    def allowed(self) -> list[DeclaredDecision]:
        return list(self.decisions or DEFAULT_DECISIONS[self.when])


class ChildRunDeclaration(_Request):
    """A step's child run (ORCH-0480): the child's inputs are templates over the parent's."""

    definition: Annotated[Text, Field(pattern=NAME_PATTERN)]
    version: Annotated[Text, Field(pattern=NAME_PATTERN)]
    inputs: dict[Identifier, Annotated[Text, Field(max_length=32_768)]] = Field(
        default_factory=dict
    )


class ForEachDeclaration(_Request):
    """A fan-out (ORCH-0481): one child run per item of a ``list`` input."""

    items: Annotated[Text, Field(min_length=1, max_length=256)]
    as_: Annotated[Text, Field(alias="as", pattern=IDENTIFIER_PATTERN)]
    max_parallel: Annotated[int, Field(ge=1, le=64), JsonInt] = 4
    on_failure: FanOutFailure = "fail_fast"


class StepDeclaration(_Request):
    id: Identifier
    prompt: Annotated[Text, Field(min_length=1, max_length=32_768)] | None = None
    run: ChildRunDeclaration | None = None
    for_each: ForEachDeclaration | None = None
    depends_on: list[Identifier] = Field(default_factory=list)
    pool: Annotated[Text, Field(min_length=1, max_length=64)] = "default"
    max_tokens: Annotated[int, Field(ge=1, le=4096), JsonInt] = 64
    params: StepParams = Field(default_factory=StepParams)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    checkpoint: CheckpointDeclaration | None = None
    on_failure: OnFailure = "fail"


class DefinitionDocument(_Request):
    """A run definition as registered (ORCH-0300..0312); graph and templates are checked apart."""

    name: Annotated[Text, Field(pattern=NAME_PATTERN)]
    version: Annotated[Text, Field(pattern=NAME_PATTERN)]
    inputs: dict[Identifier, InputDeclaration] = Field(default_factory=dict)
    steps: Annotated[list[StepDeclaration], Field(min_length=1)]


class RunCreate(_Request):
    session_id: Annotated[Text, Field(min_length=1, max_length=128)]
    definition: Annotated[Text, Field(pattern=NAME_PATTERN)]
    version: Annotated[Text, Field(pattern=NAME_PATTERN)]
    inputs: dict[Text, Any] = Field(default_factory=dict)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), JsonInt] | None = None
    max_parallel: Annotated[int, Field(ge=1, le=64), JsonInt] = 4


class WebhookCreate(_Request):
    """A subscription to run events (ORCH-0400)."""

    url: Annotated[
        Text, Field(json_schema_extra={"pattern": URL_PATTERN, "maxLength": MAX_URL_CHARS})
    ]
    events: Annotated[
        list[Text],
        Field(
            min_length=1,
            json_schema_extra={
                "uniqueItems": True,
                "anyOf": [
                    {"const": [ALL_EVENTS]},
                    {"items": {"type": "string", "enum": list(RUN_EVENTS)}},
                ],
            },
        ),
    ]
    secret: Annotated[Text, Field(min_length=MIN_SECRET_CHARS, max_length=MAX_SECRET_CHARS)]

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_url(url)

    @field_validator("events")
    @classmethod
    def _events(cls, events: list[str]) -> list[str]:
        return check_events(events)


class CheckpointDecision(_Request):
    """``POST /v1/runs/{id}/checkpoints/{checkpoint_id}`` (ORCH-0366, ORCH-0368)."""

    decision: Decision
    decided_by: Annotated[Text, Field(min_length=1, max_length=128)]
    prompt: Annotated[Text, Field(min_length=1, max_length=32_768)] | None = None
    inputs: dict[Text, Any] | None = None


# ---------------------------------------------------------------- responses


class ErrorBody(_Response):
    model_config = ConfigDict(extra="allow")
    kind: str
    message: str
    retriable: bool
    request_id: str | None = None


class ErrorEnvelope(_Response):
    error: ErrorBody


class SessionCreated(_Response):
    session_id: str
    ttl_seconds: int
    created_at: str
    expires_at: str
    metadata: dict[str, Any]


class TaskCounts(_Response):
    queued: int
    running: int
    terminal: int


class SessionInfo(SessionCreated):
    ttl_remaining_ms: int
    tasks: TaskCounts


class TaskAdmitted(_Response):
    task_id: str
    session_id: str
    state: Literal["queued"]
    priority: Priority
    pool: str
    queue_position: int
    seed: int
    stream_url: str


class TaskError(_Response):
    kind: str
    message: str
    retriable: bool


class Attempt(_Response):
    attempt: int
    replica_id: str
    state: AttemptState
    error_kind: str | None
    started_at: str
    finished_at: str | None


class TaskParamsOut(_Response):
    seed: int
    sampler_profile_version: str
    determinism: Determinism
    temperature: float
    top_p: float


class Task(_Response):
    task_id: str
    session_id: str
    state: TaskState
    priority: Priority
    pool: str
    max_tokens: int
    params: TaskParamsOut
    replica_id: str | None
    engine: str | None
    engine_version: str | None
    tokens_out: int
    finish_reason: str | None
    error: TaskError | None
    attempts: list[Attempt]
    created_at: str
    started_at: str | None
    finished_at: str | None


class QueueDepth(_Response):
    interactive: int
    batch: int


class Replica(_Response):
    replica_id: str
    engine: str
    engine_version: str
    state: ReplicaState
    in_flight: int
    slots: int


class Pool(_Response):
    pool_id: str
    ready: bool
    queue_capacity: int
    queue_depth: QueueDepth
    overflow_policy: OverflowPolicy
    max_attempts: int
    batch_share_every: int
    decode_timeout_ms: int
    replicas: list[Replica]


class PoolList(_Response):
    pools: list[Pool]


class Routing(_Response):
    fallback_mode: FallbackMode


class Health(_Response):
    status: Literal["ok"]


class Readiness(_Response):
    status: Literal["ready"]
    pools: dict[str, bool]


class DefinitionSummary(_Response):
    name: str
    version: str
    digest: str
    created_at: str


class Definition(DefinitionSummary):
    definition: DefinitionDocument


class DefinitionList(_Response):
    definitions: list[DefinitionSummary]


class StepAttempt(_Response):
    attempt: int
    task_id: str | None
    """``null`` when the step's task could not be admitted (the attempt's ``error`` says why)."""
    error: TaskError | None
    started_at: str


class Step(_Response):
    step_id: str
    state: StepState
    depends_on: list[str]
    pool: str
    seed: int
    task_id: str | None
    attempts: list[StepAttempt]
    output: str | None
    error: TaskError | None
    started_at: str | None
    finished_at: str | None
    children: list[str]
    """The step's child runs in item order (ORCH-0488); ``[]`` for a step with a prompt."""


class Run(_Response):
    run_id: str
    session_id: str
    definition: str
    version: str
    state: RunState
    seed: int
    max_parallel: int
    inputs: dict[str, Any]
    steps: list[Step]
    created_at: str
    finished_at: str | None
    events_url: str
    parent_run_id: str | None
    parent_step_id: str | None
    parent_item: int | None
    """The run, step and item that created this child run; ``null`` for a top-level run."""


class RunSummary(_Response):
    run_id: str
    session_id: str
    definition: str
    version: str
    state: RunState
    created_at: str
    finished_at: str | None


class RunList(_Response):
    runs: list[RunSummary]
    next_cursor: str | None


class Webhook(_Response):
    """A subscription as every response shows it: never its secret (ORCH-0403, ORCH-0404)."""

    webhook_id: str
    url: str
    events: list[str]
    source: WebhookSource
    created_at: str


class WebhookList(_Response):
    webhooks: list[Webhook]


class Delivery(_Response):
    """One delivery of the log (ORCH-0407, ORCH-0408)."""

    delivery_id: str
    event: RunEvent
    run_id: str
    event_id: int
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryList(_Response):
    deliveries: list[Delivery]
    next_cursor: str | None


class Approval(_Response):
    """A checkpoint of a run, as ``GET /v1/approvals`` lists it (ORCH-0365)."""

    checkpoint_id: str
    run_id: str
    step_id: str
    when: CheckpointWhen
    state: CheckpointState
    decisions: list[Decision]
    requested_at: str
    decided_at: str | None
    decision: Decision | None
    decided_by: str | None
    output: str | None
    error: TaskError | None


class ApprovalList(_Response):
    approvals: list[Approval]
    next_cursor: str | None


class AuditEntry(_Response):
    """One entry of a run's audit log (ORCH-0380, ORCH-0381)."""

    seq: int
    at: str
    actor: str
    action: AuditAction
    step_id: str | None
    checkpoint_id: str | None
    detail: dict[str, Any]


class AuditLog(_Response):
    entries: list[AuditEntry]


# ---------------------------------------------------------------- stream events


class StartedData(_Response):
    task_id: str
    replica_id: str
    engine: str
    engine_version: str
    seed: int
    sampler_profile_version: str


class TokenData(_Response):
    index: int
    text: str
    token_id: int


class EndData(_Response):
    tokens_out: int
    finish_reason: str
    seed: int


class ErrorData(_Response):
    kind: str
    message: str
    retriable: bool


STREAM_EVENT_MODELS: dict[str, type[BaseModel]] = {
    "started": StartedData,
    "token": TokenData,
    "end": EndData,
    "error": ErrorData,
}


def _check_unicode(value: Any, where: str, depth: int = 0) -> None:
    """Refuse unpaired surrogates anywhere in a JSON value: SQLite and UTF-8 cannot hold them.

    Also refuse NaN and infinities (``NaN``, ``Infinity``, ``1e400``): Python's JSON
    parser accepts them, but they are not JSON and the response could not be encoded;
    and values nested deeper than ``MAX_METADATA_DEPTH``, which could not be encoded either.
    """
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: numbers must be finite (no NaN or Infinity)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: must be valid Unicode (no unpaired surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, where, depth + 1)
            _check_unicode(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item, where, depth + 1)


# ---------------------------------------------------------------- run events (section 12.5)


class RunStartedData(_Response):
    run_id: str
    definition: str
    version: str
    seed: int


class StepStartedData(_Response):
    step_id: str
    attempt: int
    task_id: str


class StepSucceededData(_Response):
    step_id: str
    task_id: str | None
    """``null`` for a step with ``run`` (ORCH-0490)."""
    output: str


class StepFailedData(_Response):
    step_id: str
    error: TaskError


class StepSkippedData(_Response):
    step_id: str


class RunCompletedData(_Response):
    run_id: str


class RunFailedData(_Response):
    run_id: str
    step_id: str
    error: TaskError


class RunAbortedData(_Response):
    run_id: str
    message: str


class CheckpointRequestedData(_Response):
    checkpoint_id: str
    step_id: str
    when: CheckpointWhen
    decisions: list[Decision]


class CheckpointResolvedData(_Response):
    checkpoint_id: str
    step_id: str
    state: Literal["decided", "cancelled"]
    decision: Decision | None
    decided_by: str | None


class ChildStartedData(_Response):
    step_id: str
    item: int
    child_run_id: str


RUN_EVENT_MODELS: dict[RunEvent, type[BaseModel]] = {
    "run.started": RunStartedData,
    "step.started": StepStartedData,
    "step.succeeded": StepSucceededData,
    "step.failed": StepFailedData,
    "step.skipped": StepSkippedData,
    "run.completed": RunCompletedData,
    "run.failed": RunFailedData,
    "run.aborted": RunAbortedData,
    "checkpoint.requested": CheckpointRequestedData,
    "checkpoint.resolved": CheckpointResolvedData,
    "child.started": ChildStartedData,
}
"""Each run event's ``data`` (ORCH-0351)."""
