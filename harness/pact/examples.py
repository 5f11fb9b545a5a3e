"""The bodies, headers, paths and streams the interaction table is written with.

Each helper returns exactly what ``OrchClient`` sends or relies on, with Pact
matchers where a real server legitimately differs (IDs, timestamps, messages);
exact values where the spec fixes them (kinds, states, flags).
"""

from __future__ import annotations

from typing import Any

from pact import match
from pact.match.matcher import AbstractMatcher

from harness.pact.model import Interaction, from_state

RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
DIGITS = r"^\d+$"
EXAMPLE_CREATED = "2026-01-01T00:00:00.000Z"
EXAMPLE_EXPIRES = "2026-01-01T00:10:00.000Z"


def stamp(example: str = EXAMPLE_CREATED) -> AbstractMatcher[str]:
    return match.regex(example, regex=RFC3339_UTC)


def error_envelope(kind: str, *, retriable: bool, message: str, **extra: Any) -> dict[str, Any]:
    """The error envelope (ORCH-0014): exact kind and retriable, any message and request id;
    ``extra`` are fields an error of that kind carries (a checkpoint's ``state``, ORCH-0370)."""
    return {
        "error": {
            "kind": kind,
            "message": match.str(message),
            "retriable": retriable,
            "request_id": match.str("req_1"),
            **extra,
        }
    }


BACKPRESSURE = {
    "Retry-After": match.regex("1", regex=DIGITS),
    "X-Backoff-Ms": match.regex("1100", regex=DIGITS),
}
SESSION_PATH = "/v1/sessions/${session_id}"
TASK_PATH = "/v1/tasks/${task_id}"


def task_request(
    session_id: Any,
    *,
    pool: str = "default",
    priority: str = "interactive",
    prompt: str = "hello",
    seed: int | None = 7,
    determinism: str = "strict",
) -> dict[str, Any]:
    """Exactly the body ``OrchClient.submit_task`` sends (the full ``params`` object)."""
    params: dict[str, Any] = {} if seed is None else {"seed": seed}
    params |= {
        "sampler_profile_version": "v1",
        "determinism": determinism,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    return {
        "session_id": session_id,
        "prompt": prompt,
        "priority": priority,
        "pool": pool,
        "max_tokens": 2,
        "params": params,
    }


def session_from_state() -> AbstractMatcher[str]:
    return from_state("sess_1", "${session_id}")


def admitted_body(seed: Any) -> dict[str, Any]:
    return {
        "task_id": match.str("task_1"),
        "session_id": match.str("sess_1"),
        "state": "queued",
        "priority": "interactive",
        "pool": "default",
        "queue_position": match.int(0),
        "seed": seed,
        "stream_url": match.regex("/v1/tasks/task_1/stream", regex=r"^/v1/tasks/[^/]+/stream$"),
    }


SESSION_CREATED: dict[str, Any] = {
    "session_id": match.str("sess_1"),
    "ttl_seconds": 600,
    "created_at": stamp(),
    "expires_at": stamp(EXAMPLE_EXPIRES),
    "metadata": {"user": "alice"},
}

SESSION_INFO: dict[str, Any] = {
    "session_id": match.str("sess_1"),
    "ttl_seconds": 600,
    "created_at": stamp(),
    "expires_at": stamp(EXAMPLE_EXPIRES),
    "metadata": {},
    "ttl_remaining_ms": match.int(599_000),
    "tasks": {"queued": match.int(0), "running": match.int(0), "terminal": match.int(0)},
}


def task_body(
    *,
    state: str,
    finish_reason: Any,
    error: Any,
    attempt_state: str,
    attempt_error: Any,
    determinism: str = "strict",
) -> dict[str, Any]:
    return {
        "task_id": match.str("task_1"),
        "session_id": match.str("sess_1"),
        "state": state,
        "priority": "interactive",
        "pool": "default",
        "max_tokens": 2,
        "params": {
            "seed": 7,
            "sampler_profile_version": "v1",
            "determinism": determinism,
            "temperature": match.number(1.0),
            "top_p": match.number(1.0),
        },
        "replica_id": match.str("r1"),
        "engine": match.str("mock"),
        "engine_version": match.str("mock-1"),
        "tokens_out": match.int(2),
        "finish_reason": finish_reason,
        "error": error,
        "attempts": match.each_like(
            {
                "attempt": match.int(1),
                "replica_id": match.str("r1"),
                "state": attempt_state,
                "error_kind": attempt_error,
                "started_at": stamp(),
                "finished_at": stamp(),
            },
            min=1,
        ),
        "created_at": stamp(),
        "started_at": stamp(),
        "finished_at": stamp(),
    }


POOL = {
    "pool_id": match.str("default"),
    "ready": match.bool(True),
    "queue_capacity": match.int(1024),
    "queue_depth": {"interactive": match.int(0), "batch": match.int(0)},
    "overflow_policy": match.regex("reject", regex=r"^(reject|drop_lru)$"),
    "max_attempts": match.int(2),
    "batch_share_every": match.int(4),
    "decode_timeout_ms": match.int(30000),
    "replicas": match.each_like(
        {
            "replica_id": match.str("r1"),
            "engine": match.str("mock"),
            "engine_version": match.str("mock-1"),
            "state": match.regex("ready", regex=r"^(warming|ready|draining|down)$"),
            "in_flight": match.int(0),
            "slots": match.int(4),
        },
        min=1,
    ),
}

SSE_EVENT = r"data: \{[^\n]*\}\n\n"
SSE_HEAD = r"^retry: \d+\n\n(: [^\n]*\n\n)*"
STREAM_EXAMPLE = (
    "retry: 3000\n\n"
    "id: 1\nevent: started\n"
    'data: {"task_id":"task_1","replica_id":"r1","engine":"mock","engine_version":"mock-1",'
    '"seed":7,"sampler_profile_version":"v1"}\n\n'
    'id: 2\nevent: token\ndata: {"index":0,"text":" mursha","token_id":238}\n\n'
    'id: 3\nevent: token\ndata: {"index":1,"text":" zori","token_id":150}\n\n'
    'id: 4\nevent: end\ndata: {"tokens_out":2,"finish_reason":"length","seed":7}\n\n'
)
RESUMED_EXAMPLE = (
    "retry: 3000\n\n"
    'id: 3\nevent: token\ndata: {"index":1,"text":" zori","token_id":150}\n\n'
    'id: 4\nevent: end\ndata: {"tokens_out":2,"finish_reason":"length","seed":7}\n\n'
)
SSE_TYPE = {"Content-Type": match.regex("text/event-stream", regex=r"^text/event-stream(;.*)?$")}


ENGINE_SIDE_KINDS: tuple[str, ...] = (
    "WORKER_RESET",
    "REPLICA_EXHAUSTED",
    "DECODE_TIMEOUT",
    "INTERNAL",
)
"""Error kinds that end a running task (ORCH-0062): a task's ``error`` and its stream's
``error`` event, never an HTTP status of an admission."""


def failed_task_body(kind: str, *, determinism: str = "strict") -> dict[str, Any]:
    """A task that ended ``failed`` with ``kind``: its error, its failed attempts."""
    return task_body(
        state="failed",
        finish_reason=None,
        error={"kind": kind, "message": match.str(f"{kind.lower()}"), "retriable": True},
        attempt_state="failed",
        attempt_error=kind,
        determinism=determinism,
    )


def error_event(kind: str, retriable: bool) -> str:
    flag = "true" if retriable else "false"
    return f'data: {{"kind":"{kind}","message":"{kind.lower()}","retriable":{flag}}}\n\n'


def error_stream(kind: str, *, tokens: bool, retriable: bool = True) -> tuple[str, tuple[str, ...]]:
    """The example and the rules of a stream that closes with ``error`` of ``kind``.

    ``tokens``: the task sent ``started`` and one ``token`` first (event ids 1 and 2),
    else the ``error`` event is the stream's first and only event (id 1).
    """
    example = "retry: 3000\n\n"
    structure = SSE_HEAD
    next_id = 1
    if tokens:
        example += (
            'id: 1\nevent: started\ndata: {"task_id":"task_1","replica_id":"r1","engine":"mock",'
            '"engine_version":"mock-1","seed":7,"sampler_profile_version":"v1"}\n\n'
            'id: 2\nevent: token\ndata: {"index":0,"text":" mursha","token_id":238}\n\n'
        )
        structure += r"id: 1\nevent: started\n" + SSE_EVENT + r"id: 2\nevent: token\n" + SSE_EVENT
        next_id = 3
    example += f"id: {next_id}\nevent: error\n" + error_event(kind, retriable)
    structure += rf"id: {next_id}\nevent: error\n" + SSE_EVENT + "$"
    flag = "true" if retriable else "false"
    return example, (
        structure,
        rf'[\s\S]*event: error\ndata: \{{[^\n]*"kind": ?"{kind}"[,}}][\s\S]*',
        rf'[\s\S]*event: error\ndata: \{{[^\n]*"retriable": ?{flag}[,}}][\s\S]*',
        r'[\s\S]*event: error\ndata: \{[^\n]*"message": ?"[^"]+"[\s\S]*',
    )


def engine_side_interactions(
    kind: str, pool: str, tokens: bool, req: tuple[str, ...]
) -> tuple[Interaction, Interaction]:
    """A task that failed with ``kind`` on ``pool`` of the ``faulty`` server, read and streamed."""
    state = f"a task failed with {kind}"
    determinism = "best_effort" if kind == "WORKER_RESET" else "strict"
    example, rules = error_stream(kind, tokens=tokens)
    body = failed_task_body(kind, determinism=determinism)
    return (
        Interaction(
            f"get a task that failed with {kind}",
            (*req, "ORCH-0062", "ORCH-0056", "ORCH-0019"),
            "GET",
            "/v1/tasks/task_1",
            200,
            states=(state,),
            path_expr=TASK_PATH,
            response_body={**body, "pool": pool},
        ),
        Interaction(
            f"stream a task that failed with {kind}",
            (*req, "ORCH-0020", "ORCH-0082"),
            "GET",
            "/v1/tasks/task_1/stream",
            200,
            states=(state,),
            path_expr=TASK_PATH + "/stream",
            request_headers={"Accept": "text/event-stream"},
            response_headers=SSE_TYPE,
            sse_body=example,
            sse_rules=rules,
        ),
    )


# ---------------------------------------------------------------- runs (spec section 12)

RUN_PATH = "/v1/runs/${run_id}"
PACT_DEFINITION = "orchq-pact-chain"
"""The definition the run states register (idempotently: the same document answers 200)."""


def definition_document(name: Any = PACT_DEFINITION) -> dict[str, Any]:
    """Exactly the document the client registers: step ``b`` waits for ``a`` and reads its
    output, so its run shows a dependency in its steps and its events."""
    return {
        "name": name,
        "version": "1",
        "steps": [
            {"id": "a", "prompt": "hello", "max_tokens": 2},
            {"id": "b", "prompt": "{{ steps.a.output }}", "max_tokens": 2, "depends_on": ["a"]},
        ],
    }


def _declared_step(step_id: str, prompt: str, depends_on: list[str]) -> dict[str, Any]:
    """A step of a registered definition: every default filled in (ORCH-0313)."""
    return {
        "id": step_id,
        "prompt": prompt,
        "depends_on": depends_on,
        "pool": "default",
        "max_tokens": 2,
        "params": {
            "seed": None,
            "sampler_profile_version": "v1",
            "determinism": "best_effort",
            "temperature": match.number(1.0),
            "top_p": match.number(1.0),
        },
        "retry": {
            "max_attempts": 1,
            "backoff_base_ms": 100,
            "backoff_cap_ms": 10000,
            "jitter_ms": 0,
        },
    }


def definition_body(name: Any) -> dict[str, Any]:
    """The registered definition: its digest, and the document with every default filled in."""
    return {
        "name": name,
        "version": "1",
        "digest": match.regex("0" * 64, regex=r"^[0-9a-f]{64}$"),
        "created_at": stamp(),
        "definition": {
            "name": name,
            "version": "1",
            "inputs": {},
            "steps": [
                _declared_step("a", "hello", []),
                _declared_step("b", "{{ steps.a.output }}", ["a"]),
            ],
        },
    }


DEFINITION_LOCATION = {
    "Location": match.regex(
        f"/v1/definitions/{PACT_DEFINITION}/versions/1",
        regex=r"^/v1/definitions/[^/]+/versions/[^/]+$",
    )
}
RUN_LOCATION = {"Location": match.regex("/v1/runs/run_1", regex=r"^/v1/runs/[^/]+$")}


def run_body(state: str, steps: list[dict[str, Any]], *, finished: bool) -> dict[str, Any]:
    """A run of :data:`PACT_DEFINITION` in ``state`` with ``steps`` (``a``, then ``b``)."""
    return {
        "run_id": match.str("run_1"),
        "session_id": match.str("sess_1"),
        "definition": PACT_DEFINITION,
        "version": "1",
        "state": state,
        "seed": match.int(1317549976),
        "max_parallel": 4,
        "inputs": {},
        "steps": steps,
        "created_at": stamp(),
        "finished_at": stamp() if finished else None,
        "events_url": match.regex("/v1/runs/run_1/events", regex=r"^/v1/runs/[^/]+/events$"),
        "parent_run_id": None,
        "parent_step_id": None,
        "parent_item": None,
    }


def _step(step_id: str, state: str, **fields: Any) -> dict[str, Any]:
    """Step ``step_id`` of :data:`PACT_DEFINITION` in ``state``; ``fields`` override the
    values of a step that has not started."""
    return {
        "step_id": step_id,
        "state": state,
        "depends_on": ["a"] if step_id == "b" else [],
        "pool": "default",
        "seed": match.int(3677294140118564008),
        "task_id": None,
        "attempts": [],
        "output": None,
        "error": None,
        "started_at": None,
        "finished_at": None,
        "children": [],
        **fields,
    }


def _started(**fields: Any) -> dict[str, Any]:
    """The fields of a step whose one attempt's task was admitted."""
    attempt = {"attempt": 1, "task_id": match.str("task_1"), "error": None, "started_at": stamp()}
    return {
        "task_id": match.str("task_1"),
        "attempts": [attempt],
        "started_at": stamp(),
        **fields,
    }


def succeeded_step(step_id: str) -> dict[str, Any]:
    return _step(
        step_id, "succeeded", **_started(output=match.str(" jetlo mine"), finished_at=stamp())
    )


def pending_step(step_id: str) -> dict[str, Any]:
    return _step(step_id, "pending")


ABORTED_STEPS = [
    _step(
        "a",
        "failed",
        **_started(
            error={"kind": "CANCELLED", "message": match.str("cancelled"), "retriable": False},
            finished_at=stamp(),
        ),
    ),
    _step("b", "skipped", finished_at=stamp()),
]
"""An aborted run's steps: the running one failed with ``CANCELLED``, the waiting one
skipped (ORCH-0324)."""

RUN_SUMMARY = {
    "run_id": match.str("run_1"),
    "session_id": match.str("sess_1"),
    "definition": match.str(PACT_DEFINITION),
    "version": "1",
    "state": "completed",
    "created_at": stamp(),
    "finished_at": stamp(),
}

RUN_STREAM_EXAMPLE = (
    "retry: 3000\n\n"
    'id: 1\nevent: run.started\ndata: {"run_id": "run_1", "definition": "orchq-pact-chain", '
    '"version": "1", "seed": 1317549976}\n\n'
    'id: 2\nevent: step.started\ndata: {"step_id": "a", "attempt": 1, "task_id": "task_1"}\n\n'
    'id: 3\nevent: step.succeeded\ndata: {"step_id": "a", "task_id": "task_1", '
    '"output": " jetlo mine"}\n\n'
    'id: 4\nevent: step.started\ndata: {"step_id": "b", "attempt": 1, "task_id": "task_2"}\n\n'
    'id: 5\nevent: step.succeeded\ndata: {"step_id": "b", "task_id": "task_2", '
    '"output": " duqui fanve"}\n\n'
    'id: 6\nevent: run.completed\ndata: {"run_id": "run_1"}\n\n'
)
RUN_STREAM_RULES = (
    SSE_HEAD
    + r"id: 1\nevent: run\.started\n"
    + SSE_EVENT
    + r"id: 2\nevent: step\.started\n"
    + SSE_EVENT
    + r"id: 3\nevent: step\.succeeded\n"
    + SSE_EVENT
    + r"id: 4\nevent: step\.started\n"
    + SSE_EVENT
    + r"id: 5\nevent: step\.succeeded\n"
    + SSE_EVENT
    + r"id: 6\nevent: run\.completed\n"
    + SSE_EVENT
    + "$",
    r'[\s\S]*event: run\.started\ndata: \{[^\n]*"definition": ?"orchq-pact-chain"[,}][\s\S]*',
    r'[\s\S]*id: 2\nevent: step\.started\ndata: \{[^\n]*"step_id": ?"a"[,}][\s\S]*',
    r'[\s\S]*id: 3\nevent: step\.succeeded\ndata: \{[^\n]*"step_id": ?"a"[,}][\s\S]*',
    r'[\s\S]*id: 4\nevent: step\.started\ndata: \{[^\n]*"step_id": ?"b"[,}][\s\S]*',
    r'[\s\S]*event: step\.started\ndata: \{[^\n]*"attempt": ?1[,}][\s\S]*',
)
"""The replay of an ended run of :data:`PACT_DEFINITION`: ``b`` starts only after ``a``
succeeded (ORCH-0326), each event of the table of section 12.5 in order (ORCH-0352/0353).
The data's exact fields are the OpenAPI document's to pin (``orchq pact check``)."""


# ---------------------------------------------------------------- checkpoints (spec section 12.6)

GATE_DEFINITION = "orchq-pact-gate"
"""The definition whose one step waits at a ``before`` checkpoint (ORCH-0361)."""
GATE_CHECKPOINT = "a.before.1"
"""The id of its first checkpoint (ORCH-0364)."""
CHECKPOINT_PATH = RUN_PATH + "/checkpoints/" + GATE_CHECKPOINT
DECIDED_BY = "alice"


def gate_document() -> dict[str, Any]:
    """Step ``a`` waits for a ``continue`` before its task is admitted."""
    return {
        "name": GATE_DEFINITION,
        "version": "1",
        "steps": [
            {"id": "a", "prompt": "hello", "max_tokens": 2, "checkpoint": {"when": "before"}},
        ],
    }


def approval_body(*, decided: bool) -> dict[str, Any]:
    """The gate's checkpoint as ``GET /v1/approvals`` lists it, pending or decided
    ``continue`` by :data:`DECIDED_BY` (ORCH-0365, ORCH-0366)."""
    return {
        "checkpoint_id": GATE_CHECKPOINT,
        "run_id": match.str("run_1"),
        "step_id": "a",
        "when": "before",
        "state": "decided" if decided else "pending",
        "decisions": ["continue", "abort"],
        "requested_at": stamp(),
        "decided_at": stamp() if decided else None,
        "decision": "continue" if decided else None,
        "decided_by": DECIDED_BY if decided else None,
        "output": None,
        "error": None,
    }


DECISION_REQUEST = {"decision": "continue", "decided_by": DECIDED_BY}
"""Exactly the body ``OrchClient.decide_checkpoint(..., "continue", "alice")`` sends."""

GATE_AUDIT = {
    "entries": [
        {
            "seq": 1,
            "at": stamp(),
            "actor": "anonymous",
            "action": "run.created",
            "step_id": None,
            "checkpoint_id": None,
            "detail": {"definition": GATE_DEFINITION, "version": "1"},
        },
        {
            "seq": 2,
            "at": stamp(),
            "actor": DECIDED_BY,
            "action": "checkpoint.decided",
            "step_id": "a",
            "checkpoint_id": GATE_CHECKPOINT,
            "detail": {"decision": "continue"},
        },
    ]
}
"""A gated run's audit log once its checkpoint was decided: its creation without an
``X-Orch-Actor`` (ORCH-0382), then the decision (ORCH-0381)."""


# ---------------------------------------------------------------- webhooks (spec section 12.9)

WEBHOOK_PATH = "/v1/webhooks/${webhook_id}"
PACT_WEBHOOK_URL = "http://127.0.0.1:9/orchq-pact"
"""Where the subscriptions of the provider states point: nothing answers there, so a
delivery stays ``pending`` with its failed attempts counted."""
CREATED_WEBHOOK_URL = "http://127.0.0.1:9/orchq-pact-created"
"""The subscription the pact creates (its provider state removes it afterwards)."""
PACT_WEBHOOK_SECRET = "orchq-pact-secret-0123"
WEBHOOK_FIELDS = ("webhook_id", "url", "events", "source", "created_at")
"""Every key of a subscription in a response: nothing else, its secret least of all
(ORCH-0403, ORCH-0404)."""
WEBHOOK_LOCATION = {
    "Location": match.regex("/v1/webhooks/wh_1", regex=r"^/v1/webhooks/[^/]+$"),
}


def webhook_request() -> dict[str, Any]:
    """Exactly the body ``OrchClient.create_webhook`` sends for the pact's subscription."""
    return {
        "url": CREATED_WEBHOOK_URL,
        "events": ["run.completed"],
        "secret": PACT_WEBHOOK_SECRET,
    }


def webhook_body(url: str, events: list[str]) -> AbstractMatcher[Any]:
    """A subscription made through the API, holding :data:`WEBHOOK_FIELDS` and no other key."""
    body = {
        "webhook_id": match.str("wh_1"),
        "url": url,
        "events": events,
        "source": "api",
        "created_at": stamp(),
    }
    only = "^(" + "|".join(WEBHOOK_FIELDS) + ")$"
    return match.each_key_matches(body, rules=match.regex("webhook_id", regex=only))


RETRIED_DELIVERY = {
    "delivery_id": match.str("dlv_1"),
    "event": "run.started",
    "run_id": match.str("run_1"),
    "event_id": 1,
    "state": match.regex("pending", regex=r"^(pending|failed)$"),
    "attempts": match.int(1),
    "last_status": None,
    "last_error": match.str("ConnectError: All connection attempts failed"),
    "created_at": stamp(),
    "delivered_at": None,
}
"""The ``run.started`` delivery of a run to :data:`PACT_WEBHOOK_URL`: attempted, never
answered (ORCH-0407, ORCH-0408)."""
