"""Consumer side of the pact: our client against the Pact mock server, one test per interaction.

Each test declares one interaction of :data:`harness.pact.interactions.INTERACTIONS`
on a fresh Pact (a served Pact is locked), drives ``OrchClient`` (and for a few,
``AsyncOrchClient``) against the mock server, asserts what the client made of
the answer, and merges the interaction into ``--orch-pact-dir``. The mock server
fails the test if the client's request differs from the recorded one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from harness.pact.examples import (
    CREATED_WEBHOOK_URL,
    DECIDED_BY,
    ENGINE_SIDE_KINDS,
    GATE_CHECKPOINT,
    GATE_DEFINITION,
    PACT_DEFINITION,
    PACT_WEBHOOK_SECRET,
    PACT_WEBHOOK_URL,
    definition_document,
)
from harness.pact.interactions import INTERACTIONS
from harness.pact.model import CONSUMER, PROVIDER, Interaction, add_interaction
from harness.pact.pactfiles import write_with_retry
from orchestrator.client import AsyncOrchClient, OrchClient, OrchError
from orchestrator.schemas import RUN_EVENT_MODELS, ErrorEnvelope

os.environ.setdefault("PACT_DO_NOT_TRACK", "true")

pytestmark = pytest.mark.contract

Exercise = Callable[[str], None]


def _raises(kind: str, status: int, call: Callable[[], object]) -> OrchError:
    with pytest.raises(OrchError) as info:
        call()
    assert (info.value.kind, info.value.status) == (kind, status), info.value
    return info.value


def _backpressure(error: OrchError) -> None:
    assert error.retriable
    assert error.retry_after == 1, "client lost Retry-After"
    assert error.backoff_ms == 1100, "client lost X-Backoff-Ms"


def create_session(url: str) -> None:
    with OrchClient(url) as client:
        created = client.create_session(ttl_seconds=600, metadata={"user": "alice"})
    assert created.session_id == "sess_1"
    assert created.metadata == {"user": "alice"}


def create_session_bad_ttl(url: str) -> None:
    with OrchClient(url) as client:
        _raises("INVALID_PARAMS", 400, lambda: client.create_session(ttl_seconds=0))


def get_session(url: str) -> None:
    with OrchClient(url) as client:
        info = client.get_session("sess_1")
    assert info.ttl_remaining_ms == 599_000
    assert (info.tasks.queued, info.tasks.running, info.tasks.terminal) == (0, 0, 0)


def delete_session(url: str) -> None:
    with OrchClient(url) as client:
        assert client.delete_session("sess_1") is None


def get_deleted_session(url: str) -> None:
    with OrchClient(url) as client:
        _raises("NOT_FOUND", 404, lambda: client.get_session("sess_1"))


def get_unknown_session(url: str) -> None:
    with OrchClient(url) as client:
        error = _raises("NOT_FOUND", 404, lambda: client.get_session("sess_unknown"))
    assert error.request_id == "req_1"
    assert not error.retriable


def get_expired_session(url: str) -> None:
    with OrchClient(url) as client:
        _raises("SESSION_EXPIRED", 410, lambda: client.get_session("sess_1"))


def submit_strict(url: str) -> None:
    with OrchClient(url) as client:
        admitted = client.submit_task("sess_1", "hello", max_tokens=2, seed=7, determinism="strict")
    assert (admitted.task_id, admitted.seed, admitted.state) == ("task_1", 7, "queued")
    assert admitted.stream_url == "/v1/tasks/task_1/stream"


def submit_best_effort(url: str) -> None:
    with OrchClient(url) as client:
        admitted = client.submit_task("sess_1", "hello", max_tokens=2)
    assert admitted.seed == 1234, "the server-chosen seed must reach the caller"


def submit_strict_without_seed(url: str) -> None:
    with OrchClient(url) as client:
        _raises(
            "INVALID_PARAMS",
            400,
            lambda: client.submit_task("sess_1", "hello", max_tokens=2, determinism="strict"),
        )


def submit_unknown_session(url: str) -> None:
    with OrchClient(url) as client:
        _raises(
            "NOT_FOUND",
            404,
            lambda: client.submit_task(
                "sess_unknown", "hello", max_tokens=2, seed=7, determinism="strict"
            ),
        )


def submit_too_large(url: str) -> None:
    with OrchClient(url) as client:
        _raises(
            "PAYLOAD_TOO_LARGE",
            413,
            lambda: client.submit_task(
                "sess_1", "x" * 2048, max_tokens=2, seed=7, determinism="strict"
            ),
        )


def _submit(url: str, **kwargs: object) -> Callable[[], object]:
    def call() -> object:
        with OrchClient(url) as client:
            return client.submit_task(
                "sess_1",
                "hello",
                max_tokens=2,
                seed=7,
                determinism="strict",
                **kwargs,  # type: ignore[arg-type]
            )

    return call


def submit_queue_full(url: str) -> None:
    _backpressure(_raises("ADMISSION_REJECT", 429, _submit(url)))


def submit_drop_lru_full(url: str) -> None:
    _backpressure(_raises("QUEUE_FULL_DROP_LRU", 429, _submit(url, pool="lru", priority="batch")))


def submit_pool_unready(url: str) -> None:
    _backpressure(_raises("POOL_UNREADY", 503, _submit(url, pool="warming")))


def submit_pool_unavailable(url: str) -> None:
    _backpressure(_raises("POOL_UNAVAILABLE", 503, _submit(url, pool="down")))


def get_completed_task(url: str) -> None:
    with OrchClient(url) as client:
        task = client.get_task("task_1")
    assert (task.state, task.finish_reason, task.error) == ("completed", "length", None)
    assert task.params.seed == 7
    assert [a.attempt for a in task.attempts] == [1]


def get_unknown_task(url: str) -> None:
    with OrchClient(url) as client:
        _raises("NOT_FOUND", 404, lambda: client.get_task("task_unknown"))


def cancel_running_task(url: str) -> None:
    with OrchClient(url) as client:
        task = client.cancel_task("task_1")
    assert task.state == "cancelled"
    assert task.error is not None and task.error.kind == "CANCELLED"


def cancel_completed_task(url: str) -> None:
    with OrchClient(url) as client:
        _raises("CONFLICT", 409, lambda: client.cancel_task("task_1"))


def stream_completed_task(url: str) -> None:
    with OrchClient(url) as client:
        result = client.collect_stream("task_1", reconnect=False)
    assert [e.id for e in result.events] == [1, 2, 3, 4]
    assert result.started is not None and result.started.seed == 7
    assert result.texts == [" mursha", " zori"]
    assert result.end is not None and result.end.tokens_out == 2


def resume_stream(url: str) -> None:
    with OrchClient(url) as client:
        result = client.collect_stream("task_1", last_event_id=2, reconnect=False)
    assert [e.id for e in result.events] == [3, 4]
    assert [t.index for t in result.tokens] == [1]


def wrong_token(url: str) -> None:
    with OrchClient(url, token="wrong-token") as client:
        _raises("UNAUTHORIZED", 401, client.list_pools)


def list_pools(url: str) -> None:
    with OrchClient(url) as client:
        pools = client.list_pools()
    assert [p.pool_id for p in pools] == ["default"]
    assert pools[0].replicas[0].state == "ready"


def health(url: str) -> None:
    with OrchClient(url) as client:
        assert client.health().status == "ok"


def failed_task(kind: str) -> Exercise:
    def exercise(url: str) -> None:
        with OrchClient(url) as client:
            task = client.get_task("task_1")
        assert task.state == "failed"
        assert task.error is not None and (task.error.kind, task.error.retriable) == (kind, True)
        assert task.finish_reason is None
        assert [a.state for a in task.attempts] == ["failed"]

    return exercise


def failed_stream(kind: str, tokens: int) -> Exercise:
    def exercise(url: str) -> None:
        with OrchClient(url) as client:
            result = client.collect_stream("task_1", reconnect=False)
        assert not result.ok and result.error is not None
        assert (result.error.kind, result.error.retriable) == (kind, True)
        assert len(result.tokens) == tokens
        assert result.events[-1].id == tokens + (2 if tokens else 1)

    return exercise


def method_not_allowed(url: str) -> None:
    response = httpx.delete(f"{url}/v1/pools")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    error = ErrorEnvelope.model_validate(response.json()).error
    assert (error.kind, error.retriable) == ("METHOD_NOT_ALLOWED", False)


def not_json(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/sessions", content="ttl_seconds=600", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    error = ErrorEnvelope.model_validate(response.json()).error
    assert (error.kind, error.retriable) == ("UNSUPPORTED_MEDIA_TYPE", False)


def cancelled_stream(url: str) -> None:
    with OrchClient(url) as client:
        result = client.collect_stream("task_1", reconnect=False)
    assert result.error is not None
    assert (result.error.kind, result.error.retriable) == ("CANCELLED", False)
    assert [e.id for e in result.events] == [1, 2, 3]


def evicted_task(url: str) -> None:
    with OrchClient(url) as client:
        task = client.get_task("task_1")
    assert (task.state, task.priority, task.attempts) == ("dropped", "batch", [])
    assert task.error is not None and task.error.kind == "QUEUE_FULL_DROP_LRU"


def register_definition(url: str) -> None:
    with OrchClient(url) as client:
        registered = client.register_definition(definition_document())
    assert (registered.name, registered.version) == (PACT_DEFINITION, "1")
    steps = registered.definition.steps
    assert [(s.id, s.depends_on, s.retry.max_attempts) for s in steps] == [
        ("a", [], 1),
        ("b", ["a"], 1),
    ]


def register_definition_again(url: str) -> None:
    register_definition(url)


def start_run(url: str) -> None:
    with OrchClient(url) as client:
        run = client.create_run("sess_1", PACT_DEFINITION, "1")
    assert (run.run_id, run.state, run.events_url) == ("run_1", "running", "/v1/runs/run_1/events")
    assert [(s.step_id, s.state) for s in run.steps] == [("a", "pending"), ("b", "pending")]


def get_completed_run(url: str) -> None:
    with OrchClient(url) as client:
        run = client.get_run("run_1")
    assert run.state == "completed" and run.finished_at is not None
    assert [(s.step_id, s.state, s.depends_on) for s in run.steps] == [
        ("a", "succeeded", []),
        ("b", "succeeded", ["a"]),
    ]
    assert all(s.output is not None and len(s.attempts) == 1 for s in run.steps)


def list_runs_of_a_definition(url: str) -> None:
    with OrchClient(url) as client:
        page = client.list_runs(definition=PACT_DEFINITION, limit=10)
    assert [(r.run_id, r.state) for r in page.runs] == [("run_1", "completed")]
    assert page.next_cursor is None


def abort_running_run(url: str) -> None:
    with OrchClient(url) as client:
        run = client.abort_run("run_1")
    assert run.state == "aborted"
    (first, second) = run.steps
    assert first.state == "failed" and first.error is not None
    assert first.error.kind == "CANCELLED"
    assert second.state == "skipped"


def abort_completed_run(url: str) -> None:
    with OrchClient(url) as client:
        _raises("CONFLICT", 409, lambda: client.abort_run("run_1"))


def stream_completed_run(url: str) -> None:
    """The client has no run-stream reader: read it as any SSE consumer does."""
    with (
        httpx.Client(base_url=url) as http,
        connect_sse(http, "GET", "/v1/runs/run_1/events") as source,
    ):
        assert source.response.status_code == 200
        # The leading ``retry:`` block dispatches an event without data: not a run event.
        events = [(sse.id, sse.event, sse.json()) for sse in source.iter_sse() if sse.data]
    assert [(i, name) for i, name, _ in events] == [
        ("1", "run.started"),
        ("2", "step.started"),
        ("3", "step.succeeded"),
        ("4", "step.started"),
        ("5", "step.succeeded"),
        ("6", "run.completed"),
    ]
    for _, name, data in events:
        RUN_EVENT_MODELS[name].model_validate(data)  # type: ignore[index]


def list_pending_checkpoints(url: str) -> None:
    with OrchClient(url) as client:
        page = client.list_approvals(state="pending", run_id="run_1")
    assert page.next_cursor is None
    (approval,) = page.approvals
    assert (approval.checkpoint_id, approval.run_id, approval.state) == (
        GATE_CHECKPOINT,
        "run_1",
        "pending",
    )
    assert approval.decisions == ["continue", "abort"]
    assert (approval.decided_at, approval.decision, approval.decided_by) == (None, None, None)


def decide_continue(url: str) -> None:
    with OrchClient(url) as client:
        approval = client.decide_checkpoint("run_1", GATE_CHECKPOINT, "continue", DECIDED_BY)
    assert (approval.state, approval.decision, approval.decided_by) == (
        "decided",
        "continue",
        DECIDED_BY,
    )
    assert approval.decided_at is not None


def decide_twice(url: str) -> None:
    with OrchClient(url) as client:
        error = _raises(
            "CONFLICT",
            409,
            lambda: client.decide_checkpoint("run_1", GATE_CHECKPOINT, "continue", DECIDED_BY),
        )
    assert isinstance(error.body, dict)
    assert error.body["error"]["state"] == "decided", "the 409 must say the checkpoint's state"


def audit_of_a_decided_run(url: str) -> None:
    with OrchClient(url) as client:
        log = client.get_run_audit("run_1")
    assert [(e.seq, e.actor, e.action, e.checkpoint_id) for e in log.entries] == [
        (1, "anonymous", "run.created", None),
        (2, DECIDED_BY, "checkpoint.decided", GATE_CHECKPOINT),
    ]
    assert log.entries[0].detail == {"definition": GATE_DEFINITION, "version": "1"}


def create_webhook(url: str) -> None:
    with OrchClient(url) as client:
        webhook = client.create_webhook(CREATED_WEBHOOK_URL, ["run.completed"], PACT_WEBHOOK_SECRET)
    assert (webhook.webhook_id, webhook.source) == ("wh_1", "api")
    assert webhook.events == ["run.completed"]


def get_webhook(url: str) -> None:
    with OrchClient(url) as client:
        webhook = client.get_webhook("wh_1")
    assert (webhook.url, webhook.source) == (PACT_WEBHOOK_URL, "api")
    assert webhook.events == ["run.started"]
    assert PACT_WEBHOOK_SECRET not in webhook.model_dump_json()


def list_deliveries_of_a_run(url: str) -> None:
    with OrchClient(url) as client:
        page = client.list_deliveries("wh_1", run_id="run_1")
    (delivery,) = page.deliveries
    assert (delivery.event, delivery.run_id, delivery.event_id) == ("run.started", "run_1", 1)
    assert delivery.state == "pending" and delivery.attempts == 1
    assert delivery.last_status is None and delivery.last_error
    assert delivery.delivered_at is None


def delete_webhook(url: str) -> None:
    with OrchClient(url) as client:
        assert client.delete_webhook("wh_1") is None


EXERCISES: dict[str, Exercise] = {
    "create a session with metadata": create_session,
    "create a session with an out-of-range ttl": create_session_bad_ttl,
    "get a session": get_session,
    "delete a session": delete_session,
    "get a deleted session": get_deleted_session,
    "get an unknown session": get_unknown_session,
    "get an expired session": get_expired_session,
    "submit a strict task with a seed": submit_strict,
    "submit a best-effort task without a seed": submit_best_effort,
    "submit a strict task without a seed": submit_strict_without_seed,
    "submit a task to an unknown session": submit_unknown_session,
    "submit a task with a body over the size limit": submit_too_large,
    "submit a task while the queue of pool default is full": submit_queue_full,
    "submit a batch task while the drop_lru queue of pool lru holds only interactive tasks": (
        submit_drop_lru_full
    ),
    "submit a task to a pool whose replicas are warming": submit_pool_unready,
    "submit a task to a pool with no replica that can become ready": submit_pool_unavailable,
    "get a completed task": get_completed_task,
    "get an unknown task": get_unknown_task,
    "cancel a running task": cancel_running_task,
    "cancel a completed task": cancel_completed_task,
    "stream a completed task": stream_completed_task,
    "resume the stream of a completed task after event 2": resume_stream,
    "list pools with a wrong token": wrong_token,
    "list pools": list_pools,
    "check health": health,
    **{f"get a task that failed with {kind}": failed_task(kind) for kind in ENGINE_SIDE_KINDS},
    "stream a task that failed with WORKER_RESET": failed_stream("WORKER_RESET", 1),
    "stream a task that failed with REPLICA_EXHAUSTED": failed_stream("REPLICA_EXHAUSTED", 0),
    "stream a task that failed with DECODE_TIMEOUT": failed_stream("DECODE_TIMEOUT", 1),
    "stream a task that failed with INTERNAL": failed_stream("INTERNAL", 0),
    "delete the pool list, a method its path does not support": method_not_allowed,
    "create a session with a body that is not JSON": not_json,
    "stream a cancelled task": cancelled_stream,
    "get a task evicted from a full drop_lru queue": evicted_task,
    "register a definition": register_definition,
    "register the same definition again": register_definition_again,
    "start a run": start_run,
    "get a completed run": get_completed_run,
    "list the runs of a definition": list_runs_of_a_definition,
    "abort a running run": abort_running_run,
    "abort a completed run": abort_completed_run,
    "stream the events of a completed run": stream_completed_run,
    "list the pending checkpoints of a run paused at a checkpoint": list_pending_checkpoints,
    "decide continue at a pending checkpoint": decide_continue,
    "decide a checkpoint decided before": decide_twice,
    "get the audit log of a run whose checkpoint was decided": audit_of_a_decided_run,
    "create a webhook subscription": create_webhook,
    "get a webhook subscription": get_webhook,
    "list the deliveries of a run to a webhook subscription": list_deliveries_of_a_run,
    "delete a webhook subscription": delete_webhook,
}


async def _async_submit(url: str) -> None:
    async with AsyncOrchClient(url) as client:
        admitted = await client.submit_task(
            "sess_1", "hello", max_tokens=2, seed=7, determinism="strict"
        )
    assert (admitted.task_id, admitted.seed) == ("task_1", 7)


async def _async_stream(url: str) -> None:
    async with AsyncOrchClient(url) as client:
        result = await client.collect_stream("task_1", reconnect=False)
    assert [e.id for e in result.events] == [1, 2, 3, 4]
    assert result.end is not None and result.end.seed == 7


async def _async_queue_full(url: str) -> None:
    async with AsyncOrchClient(url) as client:
        with pytest.raises(OrchError) as info:
            await client.submit_task("sess_1", "hello", max_tokens=2, seed=7, determinism="strict")
    assert info.value.kind == "ADMISSION_REJECT"
    _backpressure(info.value)


ASYNC_EXERCISES: dict[str, Callable[[str], object]] = {
    "submit a strict task with a seed": _async_submit,
    "stream a completed task": _async_stream,
    "submit a task while the queue of pool default is full": _async_queue_full,
}


def record(interaction: Interaction, exercise: Exercise, pact_dir: Path) -> None:
    """Serve ``interaction`` on a fresh Pact, run ``exercise`` on it, merge the pact into
    ``pact_dir``."""
    from pact import Pact

    pact = Pact(CONSUMER, PROVIDER)
    add_interaction(pact, interaction)
    with pact.serve(addr="127.0.0.1") as server:
        exercise(str(server.url))
    write_with_retry(pact, pact_dir)


def _by_description(description: str) -> Interaction:
    return next(
        interaction for interaction in INTERACTIONS if interaction.description == description
    )


def test_every_interaction_has_an_exercise() -> None:
    assert sorted(EXERCISES) == sorted(interaction.description for interaction in INTERACTIONS)


@pytest.mark.parametrize(
    "interaction", INTERACTIONS, ids=lambda interaction: interaction.description
)
def test_sync_client(interaction: Interaction, orch_pact_dir: Path) -> None:
    record(interaction, EXERCISES[interaction.description], orch_pact_dir)


@pytest.mark.parametrize("description", sorted(ASYNC_EXERCISES))
def test_async_client(description: str, orch_pact_dir: Path) -> None:
    coroutine = ASYNC_EXERCISES[description]

    def run(url: str) -> None:
        asyncio.run(coroutine(url))  # type: ignore[arg-type]

    record(_by_description(description), run, orch_pact_dir)
