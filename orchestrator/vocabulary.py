"""The words of the OrchQueue v1 wire: priorities, states, stream events, error kinds.

The one definition of each: the server, the client, the harness and the tests
import these instead of spelling the values again. The error table is the
spec's table 2.2 (ORCH-0019), and a test holds it against the spec's text.
Standard library only, so that any checker can import it without the server.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, Literal, NamedTuple, get_args

Priority = Literal["interactive", "batch"]
PRIORITIES: Final[tuple[Priority, ...]] = ("interactive", "batch")
"""Highest first (ORCH-0089)."""

Determinism = Literal["strict", "best_effort"]
OverflowPolicy = Literal["reject", "drop_lru"]
FallbackMode = Literal["aggressive_fallback", "intelligent_pacing"]
ReplicaState = Literal["warming", "ready", "draining", "down"]
REPLICA_STATES: Final[tuple[ReplicaState, ...]] = get_args(ReplicaState)

TaskState = Literal["queued", "running", "completed", "failed", "cancelled", "dropped"]
LIVE_STATES: Final = frozenset({"queued", "running"})
"""A task in one of these has not ended yet."""
TERMINAL_STATES: Final = frozenset({"completed", "failed", "cancelled", "dropped"})
"""A task reaches exactly one of these and never leaves it (ORCH-0060)."""

AttemptState = Literal["running", "completed", "failed", "cancelled"]

StreamEvent = Literal["started", "token", "end", "error"]

RunState = Literal["running", "awaiting_approval", "completed", "failed", "aborted"]
RUN_TERMINAL_STATES: Final = frozenset({"completed", "failed", "aborted"})
"""A run reaches exactly one of these and never leaves it (ORCH-0325)."""
StepState = Literal["pending", "running", "waiting_approval", "succeeded", "failed", "skipped"]
STEP_TERMINAL_STATES: Final = frozenset({"succeeded", "failed", "skipped"})
RunEvent = Literal[
    "run.started",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "run.completed",
    "run.failed",
    "run.aborted",
    "checkpoint.requested",
    "checkpoint.resolved",
    "child.started",
]
RUN_EVENTS: Final[tuple[RunEvent, ...]] = get_args(RunEvent)
DeliveryState = Literal["pending", "delivered", "failed"]
"""States of a webhook delivery (ORCH-0408)."""
DeliveryOutcome = Literal["delivered", "retried", "failed"]
"""How a delivery attempt ended, the ``outcome`` label of ``orchq_webhook_deliveries_total``."""
WebhookSource = Literal["config", "api"]
RUN_CLOSING_EVENTS: Final = frozenset({"run.completed", "run.failed", "run.aborted"})
"""The events that close a run's stream; it has exactly one of them (ORCH-0352)."""
InputType = Literal["string", "integer", "boolean", "list"]
FanOutFailure = Literal["fail_fast", "collect_all"]
DeclaredWhen = Literal["before", "after"]
"""Where a definition may put a step's checkpoint (ORCH-0360)."""
CheckpointWhen = Literal["before", "after", "failure"]
CHECKPOINT_WHENS: Final[tuple[CheckpointWhen, ...]] = ("before", "after", "failure")
"""``failure``: the checkpoint of a step held by ``on_failure: hold`` (ORCH-0374)."""
DeclaredDecision = Literal["continue", "retry", "abort"]
Decision = Literal["continue", "retry", "skip", "abort"]
FAILURE_DECISIONS: Final[tuple[Decision, ...]] = ("retry", "skip", "abort")
"""The decisions of a failure checkpoint (ORCH-0374)."""
OnFailure = Literal["fail", "hold"]
CheckpointState = Literal["pending", "decided", "cancelled"]
AuditAction = Literal["run.created", "checkpoint.decided", "run.aborted"]
CLOSING_EVENTS: Final = frozenset({"end", "error"})
"""The events that close a task's stream; it has exactly one of them (ORCH-0081)."""


class ErrorKind(enum.StrEnum):
    """The error kinds of the spec's table 2.2: every error envelope, task error and
    ``error`` event carries one of these (ORCH-0019)."""

    INVALID_PARAMS = "INVALID_PARAMS"
    INVALID_DEFINITION = "INVALID_DEFINITION"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    CANCELLED = "CANCELLED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    ADMISSION_REJECT = "ADMISSION_REJECT"
    QUEUE_FULL_DROP_LRU = "QUEUE_FULL_DROP_LRU"
    INTERNAL = "INTERNAL"
    WORKER_RESET = "WORKER_RESET"
    POOL_UNREADY = "POOL_UNREADY"
    POOL_UNAVAILABLE = "POOL_UNAVAILABLE"
    REPLICA_EXHAUSTED = "REPLICA_EXHAUSTED"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    SERVER_BUSY = "SERVER_BUSY"
    DECODE_TIMEOUT = "DECODE_TIMEOUT"


class ErrorKindInfo(NamedTuple):
    status: int
    """The HTTP status of a response with this kind, also for a task error of the kind."""
    retriable: bool


ERROR_KINDS: Final[Mapping[str, ErrorKindInfo]] = {
    ErrorKind.INVALID_PARAMS:         ErrorKindInfo(400, False),
    ErrorKind.INVALID_DEFINITION:     ErrorKindInfo(400, False),
    ErrorKind.UNAUTHORIZED:           ErrorKindInfo(401, False),
    ErrorKind.NOT_FOUND:              ErrorKindInfo(404, False),
    ErrorKind.METHOD_NOT_ALLOWED:     ErrorKindInfo(405, False),
    ErrorKind.CONFLICT:               ErrorKindInfo(409, False),
    ErrorKind.CANCELLED:              ErrorKindInfo(409, False),
    ErrorKind.SESSION_EXPIRED:        ErrorKindInfo(410, False),
    ErrorKind.PAYLOAD_TOO_LARGE:      ErrorKindInfo(413, False),
    ErrorKind.UNSUPPORTED_MEDIA_TYPE: ErrorKindInfo(415, False),
    ErrorKind.HEADERS_TOO_LARGE:      ErrorKindInfo(431, False),
    ErrorKind.ADMISSION_REJECT:       ErrorKindInfo(429, True),
    ErrorKind.QUEUE_FULL_DROP_LRU:    ErrorKindInfo(429, True),
    ErrorKind.INTERNAL:               ErrorKindInfo(500, True),
    ErrorKind.WORKER_RESET:           ErrorKindInfo(502, True),
    ErrorKind.POOL_UNREADY:           ErrorKindInfo(503, True),
    ErrorKind.POOL_UNAVAILABLE:       ErrorKindInfo(503, True),
    ErrorKind.REPLICA_EXHAUSTED:      ErrorKindInfo(503, True),
    ErrorKind.STORAGE_UNAVAILABLE:    ErrorKindInfo(503, True),
    ErrorKind.SERVER_BUSY:            ErrorKindInfo(503, True),
    ErrorKind.DECODE_TIMEOUT:         ErrorKindInfo(504, True),
}  # fmt: skip
"""Kind -> HTTP status and ``retriable``, as table 2.2 gives them (ORCH-0019); keyed by
:class:`ErrorKind`, which is a ``str``, so a kind read off the wire looks up as it is."""

TASK_ERROR_KINDS: Final = frozenset(
    {
        ErrorKind.CANCELLED,
        ErrorKind.QUEUE_FULL_DROP_LRU,
        ErrorKind.INTERNAL,
        ErrorKind.WORKER_RESET,
        ErrorKind.REPLICA_EXHAUSTED,
        ErrorKind.DECODE_TIMEOUT,
    }
)
"""The kinds a task's ``error`` and its stream's ``error`` event may carry (ORCH-0062..0064)."""

TASK_ONLY_ERROR_KINDS: Final = frozenset(
    {
        ErrorKind.CANCELLED,
        ErrorKind.WORKER_RESET,
        ErrorKind.REPLICA_EXHAUSTED,
        ErrorKind.DECODE_TIMEOUT,
    }
)
"""Kinds that end a task and never answer a request."""

RESPONSE_ERROR_KINDS: Final = frozenset(ERROR_KINDS) - TASK_ONLY_ERROR_KINDS
"""The kinds an error response may carry."""


BACKOFF_STATUSES: Final = frozenset({429, 503})
"""Statuses that carry ``Retry-After`` and ``X-Backoff-Ms`` (ORCH-0021, ORCH-0024)."""
MAX_BACKOFF_JITTER_MS: Final = 250
"""``X-Backoff-Ms`` is the suggested wait plus 0 to this many milliseconds (ORCH-0022)."""
SUGGESTED_WAIT_MS: Final[Mapping[str, int]] = {
    ErrorKind.ADMISSION_REJECT: 1000,  # ORCH-0244
    ErrorKind.QUEUE_FULL_DROP_LRU: 1000,  # ORCH-0244
    ErrorKind.POOL_UNAVAILABLE: 2000,  # ORCH-0245
    ErrorKind.SERVER_BUSY: 1000,  # ORCH-0179
    ErrorKind.STORAGE_UNAVAILABLE: 2000,  # ORCH-0180
}
"""The fixed suggested waits; ``POOL_UNREADY``'s is the warm-up time left (ORCH-0246)."""


class AttemptErrorKind(enum.StrEnum):
    """What an attempt's ``error_kind`` may say beyond the task error kinds (ORCH-0151):
    it describes that attempt alone, never a task's outcome."""

    ENGINE_RATE_LIMITED = "ENGINE_RATE_LIMITED"
    """The engine answered 429."""
    ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"
    """The replica could not be reached."""
