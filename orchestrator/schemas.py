"""Wire models of OrchQueue v1 (specs/orchestrator-spec.md): server, client and harness share them.

Request models refuse unknown fields and coerce nothing JSON would not; response
models describe exactly what the server sends, and generate the OpenAPI document.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.validators import JsonInt, JsonNumber, Text
from orchestrator.vocabulary import (
    AttemptState,
    Determinism,
    FallbackMode,
    OverflowPolicy,
    Priority,
    ReplicaState,
    TaskState,
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
