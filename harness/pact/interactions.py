"""Every interaction of the ``orchq-client`` -> ``orchestratord`` pact, stated once.

The table is data, so the consumer tests (which record it by driving our client
against the Pact mock server), the provider verification (which replays it
against a real server) and ``orchq pact regen`` cannot drift apart. Each
:class:`~harness.pact.model.Interaction` carries the ORCH IDs its provider
verification certifies, so a failed replay names the broken requirement. The
table is one cohesive thing, kept whole so it reads top to bottom.
"""

from __future__ import annotations

from pact import match

from harness.pact.examples import (
    ABORTED_STEPS,
    BACKPRESSURE,
    DEFINITION_LOCATION,
    PACT_DEFINITION,
    POOL,
    RESUMED_EXAMPLE,
    RUN_LOCATION,
    RUN_PATH,
    RUN_STREAM_EXAMPLE,
    RUN_STREAM_RULES,
    RUN_SUMMARY,
    SESSION_CREATED,
    SESSION_INFO,
    SESSION_PATH,
    SSE_EVENT,
    SSE_HEAD,
    SSE_TYPE,
    STREAM_EXAMPLE,
    TASK_PATH,
    admitted_body,
    definition_body,
    definition_document,
    engine_side_interactions,
    error_envelope,
    error_stream,
    pending_step,
    run_body,
    session_from_state,
    succeeded_step,
    task_body,
    task_request,
)
from harness.pact.model import Interaction, from_state

INTERACTIONS: tuple[Interaction, ...] = (
    # ---- sessions
    Interaction(
        "create a session with metadata",
        ("ORCH-0025", "ORCH-0026", "ORCH-0005"),
        "POST",
        "/v1/sessions",
        201,
        request_body={"ttl_seconds": 600, "metadata": {"user": "alice"}},
        response_body=SESSION_CREATED,
    ),
    Interaction(
        "create a session with an out-of-range ttl",
        ("ORCH-0025", "ORCH-0002", "ORCH-0014"),
        "POST",
        "/v1/sessions",
        400,
        request_body={"ttl_seconds": 0},
        response_body=error_envelope(
            "INVALID_PARAMS", retriable=False, message="ttl_seconds: too low"
        ),
    ),
    Interaction(
        "get a session",
        ("ORCH-0027", "ORCH-0029"),
        "GET",
        "/v1/sessions/sess_1",
        200,
        states=("a session exists",),
        path_expr=SESSION_PATH,
        response_body=SESSION_INFO,
    ),
    Interaction(
        "delete a session",
        ("ORCH-0033",),
        "DELETE",
        "/v1/sessions/sess_1",
        204,
        states=("a session exists",),
        path_expr=SESSION_PATH,
    ),
    Interaction(
        "get a deleted session",
        ("ORCH-0033", "ORCH-0030"),
        "GET",
        "/v1/sessions/sess_1",
        404,
        states=("a deleted session exists",),
        path_expr=SESSION_PATH,
        response_body=error_envelope("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "get an unknown session",
        ("ORCH-0030", "ORCH-0014", "ORCH-0019", "ORCH-0004"),
        "GET",
        "/v1/sessions/sess_unknown",
        404,
        response_headers={"X-Request-Id": match.regex("req_1", regex=r"^\S+$")},
        response_body=error_envelope("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "get an expired session",
        ("ORCH-0031",),
        "GET",
        "/v1/sessions/sess_1",
        410,
        states=("an expired session exists",),
        path_expr=SESSION_PATH,
        response_body=error_envelope("SESSION_EXPIRED", retriable=False, message="session expired"),
    ),
    # ---- task admission and the determinism knobs
    Interaction(
        "submit a strict task with a seed",
        ("ORCH-0042", "ORCH-0044", "ORCH-0040"),
        "POST",
        "/v1/tasks",
        202,
        states=("a session exists",),
        request_body=task_request(session_from_state()),
        response_headers={
            "Location": match.regex("/v1/tasks/task_1", regex=r"^/v1/tasks/[^/]+$"),
        },
        response_body=admitted_body(7),
    ),
    Interaction(
        "submit a best-effort task without a seed",
        ("ORCH-0042", "ORCH-0044"),
        "POST",
        "/v1/tasks",
        202,
        states=("a session exists",),
        request_body=task_request(session_from_state(), seed=None, determinism="best_effort"),
        response_headers={
            "Location": match.regex("/v1/tasks/task_1", regex=r"^/v1/tasks/[^/]+$"),
        },
        response_body=admitted_body(match.int(1234)),
    ),
    Interaction(
        "submit a strict task without a seed",
        ("ORCH-0041", "ORCH-0014"),
        "POST",
        "/v1/tasks",
        400,
        states=("a session exists",),
        request_body=task_request(session_from_state(), seed=None),
        response_body=error_envelope(
            "INVALID_PARAMS", retriable=False, message="determinism 'strict' requires a seed"
        ),
    ),
    Interaction(
        "submit a task to an unknown session",
        ("ORCH-0046",),
        "POST",
        "/v1/tasks",
        404,
        request_body=task_request("sess_unknown"),
        response_body=error_envelope("NOT_FOUND", retriable=False, message="session not found"),
    ),
    Interaction(
        "submit a task with a body over the size limit",
        ("ORCH-0009",),
        "POST",
        "/v1/tasks",
        413,
        states=("a session exists", "the request body limit is 1024 bytes"),
        request_body=task_request(session_from_state(), prompt="x" * 2048),
        response_body=error_envelope(
            "PAYLOAD_TOO_LARGE", retriable=False, message="body too large"
        ),
    ),
    # ---- backpressure: every 429/503 carries Retry-After and X-Backoff-Ms
    Interaction(
        "submit a task while the queue of pool default is full",
        ("ORCH-0095", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        429,
        states=("the queue of pool default is full",),
        request_body=task_request(session_from_state()),
        response_headers=BACKPRESSURE,
        response_body=error_envelope("ADMISSION_REJECT", retriable=True, message="queue is full"),
    ),
    Interaction(
        "submit a batch task while the drop_lru queue of pool lru holds only interactive tasks",
        ("ORCH-0098", "ORCH-0099", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        429,
        states=("the queue of pool lru is full of interactive tasks",),
        request_body=task_request(session_from_state(), pool="lru", priority="batch"),
        response_headers=BACKPRESSURE,
        response_body=error_envelope(
            "QUEUE_FULL_DROP_LRU", retriable=True, message="nothing evictable"
        ),
    ),
    Interaction(
        "submit a task to a pool whose replicas are warming",
        ("ORCH-0048", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        503,
        states=("a session exists", "pool warming is still warming"),
        request_body=task_request(session_from_state(), pool="warming"),
        response_headers=BACKPRESSURE,
        response_body=error_envelope("POOL_UNREADY", retriable=True, message="pool is warming"),
    ),
    Interaction(
        "submit a task to a pool with no replica that can become ready",
        ("ORCH-0049", "ORCH-0021"),
        "POST",
        "/v1/tasks",
        503,
        states=("a session exists", "pool down has no replica that can become ready"),
        request_body=task_request(session_from_state(), pool="down"),
        response_headers=BACKPRESSURE,
        response_body=error_envelope(
            "POOL_UNAVAILABLE", retriable=True, message="pool unavailable"
        ),
    ),
    # ---- tasks
    Interaction(
        "get a completed task",
        ("ORCH-0051", "ORCH-0052", "ORCH-0061", "ORCH-0100"),
        "GET",
        "/v1/tasks/task_1",
        200,
        states=("a completed task exists",),
        path_expr=TASK_PATH,
        response_body=task_body(
            state="completed",
            finish_reason=match.regex("length", regex=r"^(length|stop)$"),
            error=None,
            attempt_state="completed",
            attempt_error=None,
        ),
    ),
    Interaction(
        "get an unknown task",
        ("ORCH-0058",),
        "GET",
        "/v1/tasks/task_unknown",
        404,
        response_body=error_envelope("NOT_FOUND", retriable=False, message="task not found"),
    ),
    Interaction(
        "cancel a running task",
        ("ORCH-0066", "ORCH-0063"),
        "DELETE",
        "/v1/tasks/task_1",
        200,
        states=("a running task exists",),
        path_expr=TASK_PATH,
        response_body={
            **task_body(
                state="cancelled",
                finish_reason=None,
                error={"kind": "CANCELLED", "message": match.str("cancelled"), "retriable": False},
                attempt_state="cancelled",
                attempt_error=None,
            ),
            "tokens_out": match.int(1),
        },
    ),
    Interaction(
        "cancel a completed task",
        ("ORCH-0069",),
        "DELETE",
        "/v1/tasks/task_1",
        409,
        states=("a completed task exists",),
        path_expr=TASK_PATH,
        response_body=error_envelope("CONFLICT", retriable=False, message="task already ended"),
    ),
    # ---- the stream
    Interaction(
        "stream a completed task",
        ("ORCH-0070", "ORCH-0071", "ORCH-0072", "ORCH-0073", "ORCH-0080", "ORCH-0081", "ORCH-0084"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a completed task exists",),
        path_expr=TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream"},
        response_headers=SSE_TYPE,
        sse_body=STREAM_EXAMPLE,
        sse_rules=(
            SSE_HEAD
            + r"id: 1\nevent: started\n"
            + SSE_EVENT
            + r"id: 2\nevent: token\n"
            + SSE_EVENT
            + r"id: 3\nevent: token\n"
            + SSE_EVENT
            + r"id: 4\nevent: end\n"
            + SSE_EVENT
            + "$",
            r'[\s\S]*event: started\ndata: \{[^\n]*"seed": ?7[,}][\s\S]*',
            r'[\s\S]*event: token\ndata: \{[^\n]*"index": ?0[,}][\s\S]*',
            r'[\s\S]*event: token\ndata: \{[^\n]*"token_id": ?\d+[,}][\s\S]*',
            r'[\s\S]*event: end\ndata: \{[^\n]*"tokens_out": ?2[,}][\s\S]*',
            r'[\s\S]*event: end\ndata: \{[^\n]*"seed": ?7[,}][\s\S]*',
        ),
    ),
    Interaction(
        "resume the stream of a completed task after event 2",
        ("ORCH-0083", "ORCH-0084"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a completed task exists",),
        path_expr=TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream", "Last-Event-ID": "2"},
        response_headers=SSE_TYPE,
        sse_body=RESUMED_EXAMPLE,
        sse_rules=(
            SSE_HEAD
            + r"id: 3\nevent: token\n"
            + SSE_EVENT
            + r"id: 4\nevent: end\n"
            + SSE_EVENT
            + "$",
            r'[\s\S]*event: token\ndata: \{[^\n]*"index": ?1[,}][\s\S]*',
        ),
    ),
    # ---- auth, pools, health
    Interaction(
        "list pools with a wrong token",
        ("ORCH-0007",),
        "GET",
        "/v1/pools",
        401,
        states=("an API token is required",),
        request_headers={"Authorization": "Bearer wrong-token"},
        response_body=error_envelope(
            "UNAUTHORIZED", retriable=False, message="missing or wrong token"
        ),
    ),
    Interaction(
        "list pools",
        ("ORCH-0119", "ORCH-0120", "ORCH-0121"),
        "GET",
        "/v1/pools",
        200,
        response_body={"pools": match.each_like(POOL, min=1)},
    ),
    Interaction(
        "check health",
        ("ORCH-0129",),
        "GET",
        "/healthz",
        200,
        response_body={"status": "ok"},
    ),
    # ---- the error kinds that end a running task (spec section 2.2), where they appear
    *(
        interaction
        for kind, pool, tokens, req in (
            ("WORKER_RESET", "reset", True, ("ORCH-0108",)),
            ("REPLICA_EXHAUSTED", "exhausted", False, ("ORCH-0102",)),
            ("DECODE_TIMEOUT", "stalled", True, ("ORCH-0111", "ORCH-0112")),
            ("INTERNAL", "crashing", False, ("ORCH-0018", "ORCH-0060")),
        )
        for interaction in engine_side_interactions(kind, pool, tokens, req)
    ),
    # ---- the request's own faults: method, media type
    Interaction(
        "delete the pool list, a method its path does not support",
        ("ORCH-0011", "ORCH-0012", "ORCH-0014"),
        "DELETE",
        "/v1/pools",
        405,
        response_headers={"Allow": match.regex("GET", regex=r"^(.*, )?GET(, .*)?$")},
        response_body=error_envelope("METHOD_NOT_ALLOWED", retriable=False, message="not allowed"),
    ),
    Interaction(
        "create a session with a body that is not JSON",
        ("ORCH-0010", "ORCH-0014"),
        "POST",
        "/v1/sessions",
        415,
        request_text=("text/plain", "ttl_seconds=600"),
        response_body=error_envelope("UNSUPPORTED_MEDIA_TYPE", retriable=False, message="not JSON"),
    ),
    # ---- terminal errors of tasks ended by a client or by the queue
    Interaction(
        "stream a cancelled task",
        ("ORCH-0063", "ORCH-0020", "ORCH-0082"),
        "GET",
        "/v1/tasks/task_1/stream",
        200,
        states=("a cancelled task exists",),
        path_expr=TASK_PATH + "/stream",
        request_headers={"Accept": "text/event-stream"},
        response_headers=SSE_TYPE,
        sse_body=error_stream("CANCELLED", tokens=True, retriable=False)[0],
        sse_rules=error_stream("CANCELLED", tokens=True, retriable=False)[1],
    ),
    Interaction(
        "get a task evicted from a full drop_lru queue",
        ("ORCH-0064", "ORCH-0097"),
        "GET",
        "/v1/tasks/task_1",
        200,
        states=("a task was evicted from the drop_lru queue of pool lru",),
        path_expr=TASK_PATH,
        response_body={
            **task_body(
                state="dropped",
                finish_reason=None,
                error={
                    "kind": "QUEUE_FULL_DROP_LRU",
                    "message": match.str("evicted"),
                    "retriable": True,
                },
                attempt_state="failed",
                attempt_error=None,
            ),
            "priority": "batch",
            "pool": "lru",
            "replica_id": None,
            "engine": None,
            "engine_version": None,
            "tokens_out": 0,
            "attempts": [],
            "started_at": None,
        },
    ),
    # ---- runs (the runs profile, spec section 12)
    Interaction(
        "register a definition",
        ("ORCH-0312", "ORCH-0313"),
        "POST",
        "/v1/definitions",
        201,
        states=("no definition is registered under the name to register",),
        request_body=definition_document(from_state(PACT_DEFINITION, "${definition}")),
        response_headers=DEFINITION_LOCATION,
        response_body=definition_body(match.str(PACT_DEFINITION)),
        profile="runs",
    ),
    Interaction(
        "register the same definition again",
        ("ORCH-0313",),
        "POST",
        "/v1/definitions",
        200,
        states=("the pact's definition is registered",),
        request_body=definition_document(),
        response_headers=DEFINITION_LOCATION,
        response_body=definition_body(PACT_DEFINITION),
        profile="runs",
    ),
    Interaction(
        "start a run",
        ("ORCH-0316", "ORCH-0317"),
        "POST",
        "/v1/runs",
        202,
        states=("a session exists and the pact's definition is registered",),
        request_body={
            "session_id": session_from_state(),
            "definition": PACT_DEFINITION,
            "version": "1",
            "inputs": {},
        },
        response_headers=RUN_LOCATION,
        response_body=run_body("running", [pending_step("a"), pending_step("b")], finished=False),
        profile="runs",
    ),
    Interaction(
        "get a completed run",
        ("ORCH-0320", "ORCH-0321", "ORCH-0326"),
        "GET",
        "/v1/runs/run_1",
        200,
        states=("a completed run exists",),
        path_expr=RUN_PATH,
        response_body=run_body(
            "completed", [succeeded_step("a"), succeeded_step("b")], finished=True
        ),
        profile="runs",
    ),
    Interaction(
        "list the runs of a definition",
        ("ORCH-0323",),
        "GET",
        "/v1/runs",
        200,
        states=("a completed run of a definition of its own exists",),
        query={"definition": from_state(PACT_DEFINITION, "${definition}"), "limit": "10"},
        response_body={"runs": [RUN_SUMMARY], "next_cursor": None},
        profile="runs",
    ),
    Interaction(
        "abort a running run",
        ("ORCH-0324",),
        "DELETE",
        "/v1/runs/run_1",
        200,
        states=("a running run exists",),
        path_expr=RUN_PATH,
        response_body=run_body("aborted", ABORTED_STEPS, finished=True),
        profile="runs",
    ),
    Interaction(
        "abort a completed run",
        ("ORCH-0324",),
        "DELETE",
        "/v1/runs/run_1",
        409,
        states=("a completed run exists",),
        path_expr=RUN_PATH,
        response_body=error_envelope("CONFLICT", retriable=False, message="run already ended"),
        profile="runs",
    ),
    Interaction(
        "stream the events of a completed run",
        ("ORCH-0350", "ORCH-0351", "ORCH-0352", "ORCH-0353", "ORCH-0326"),
        "GET",
        "/v1/runs/run_1/events",
        200,
        states=("a completed run exists",),
        path_expr=RUN_PATH + "/events",
        request_headers={"Accept": "text/event-stream"},
        response_headers=SSE_TYPE,
        sse_body=RUN_STREAM_EXAMPLE,
        sse_rules=RUN_STREAM_RULES,
        profile="runs",
    ),
)


def by_description() -> dict[str, Interaction]:
    """The table keyed by description (descriptions are unique)."""
    return {interaction.description: interaction for interaction in INTERACTIONS}
