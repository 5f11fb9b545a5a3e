"""Cancellation at every point of a task's life, and the slots it must give back.

Spec: ORCH-0034, ORCH-0054, ORCH-0063, ORCH-0066, ORCH-0067, ORCH-0068, ORCH-0069,
ORCH-0082.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.client import OrchClient, OrchError
from orchestrator.config import Config
from tests.orchestrator.faults.faultkit import (
    Orch,
    RawEvent,
    ScriptBook,
    assert_slots_free,
    attempt_rows,
    check_stream,
    in_flight,
    rate_limited,
    read_stream,
    reset_after,
    tokens,
    wait_task,
)
from tests.support import pool

StartOrch = Callable[..., Orch]
SLOW = {"replica_id": "r1", "slots": 1, "token_delay_ms": 50}
"""One slot, 50 ms a token: a 100-token task runs ~5 s unless cancelled."""


class StreamReader:
    """Read a task's stream to EOF in a background thread (a client watching live)."""

    def __init__(self, url: str, task_id: str) -> None:
        self.events: list[RawEvent] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(url, task_id), daemon=True)
        self._thread.start()

    def _read(self, url: str, task_id: str) -> None:
        try:
            self.events = read_stream(url, task_id, timeout=10)
        except BaseException as exc:
            self.error = exc

    def join(self) -> list[RawEvent]:
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error
        return self.events


def assert_cancelled_terminal(terminal: RawEvent) -> None:
    assert terminal.event == "error"
    assert terminal.data["kind"] == "CANCELLED"
    assert terminal.data["retriable"] is False


def assert_conflict_on_second_cancel(client: OrchClient, task_id: str) -> None:
    with pytest.raises(OrchError) as info:
        client.cancel_task(task_id)
    assert info.value.status == 409
    assert info.value.kind == "CONFLICT"
    assert client.get_task(task_id).state == "cancelled"


@pytest.mark.req("ORCH-0063", "ORCH-0066", "ORCH-0067", "ORCH-0069", "ORCH-0082")
def test_cancel_a_queued_task(orch: StartOrch) -> None:
    o = orch(pool("default", replicas=[SLOW]))
    blocker = o.submit("blocker", max_tokens=100)
    wait_task(o.client, blocker, lambda t: t.state == "running")
    queued = o.submit("waiting", max_tokens=4)
    assert o.client.get_task(queued).state == "queued"
    assert o.client.get_pool("default").queue_depth.interactive == 1

    cancelled = o.client.cancel_task(queued)

    assert cancelled.state == "cancelled"
    assert cancelled.error is not None and cancelled.error.kind == "CANCELLED"
    assert cancelled.attempts == []
    assert cancelled.finished_at is not None
    assert o.client.get_pool("default").queue_depth.interactive == 0
    events = read_stream(o.url, queued)
    assert [e.event for e in events] == ["error"]
    assert_cancelled_terminal(check_stream(events))
    assert_conflict_on_second_cancel(o.client, queued)
    # It was removed from the queue, not just marked: the blocker is still the only task.
    assert in_flight(o.client) == {"default/r1": 1}

    o.client.cancel_task(blocker)
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0054", "ORCH-0063", "ORCH-0066", "ORCH-0068", "ORCH-0069")
def test_cancel_a_running_task_ends_its_stream_and_frees_its_slot(orch: StartOrch) -> None:
    o = orch(pool("default", replicas=[SLOW]))
    task_id = o.submit("long", max_tokens=100, seed=11, determinism="strict")
    reader = StreamReader(o.url, task_id)
    wait_task(o.client, task_id, lambda t: t.tokens_out >= 2)

    cancelled = o.client.cancel_task(task_id)

    assert cancelled.state == "cancelled"
    live = reader.join()
    terminal = check_stream(live)
    assert_cancelled_terminal(terminal)
    sent = [e for e in live if e.event == "token"]
    assert len(sent) >= 2
    task = o.client.get_task(task_id)
    assert task.state == "cancelled"
    assert task.error is not None and task.error.kind == "CANCELLED"
    assert task.tokens_out == len(sent)
    assert attempt_rows(task) == [(1, "r1", "cancelled", None)]
    assert task.attempts[-1].finished_at is not None
    # No token after the cancel: a later replay is the same stream, still ending in CANCELLED.
    time.sleep(0.15)
    assert read_stream(o.url, task_id) == live
    assert_conflict_on_second_cancel(o.client, task_id)
    # The only slot is free again: a next task runs to its end.
    assert_slots_free(o.client)
    follow = o.run("next", max_tokens=2)
    assert follow.terminal.event == "end"
    assert_slots_free(o.client)


@pytest.mark.req("ORCH-0066", "ORCH-0068")
def test_cancel_while_waiting_retry_after_between_attempts(
    scripted: ScriptBook, make_config: Callable[..., Config]
) -> None:
    # Only one outcome scripted: a retry after the cancel would be an extra call (leak guard).
    scripted.script("r1", rate_limited(1.0))
    server = scripted.serve(
        make_config(
            pools=[pool("default", replicas=1, max_attempts=3)],
            fallback_mode="intelligent_pacing",
        )
    )
    with OrchClient(server.url) as client:
        session = client.create_session().session_id
        task_id = client.submit_task(session, "paced", max_tokens=4).task_id
        wait_task(client, task_id, lambda t: [a.state for a in t.attempts] == ["failed"])
        assert client.get_task(task_id).state == "running"
        assert in_flight(client) == {"default/r1": 0}, "no slot is held while pacing"

        cancelled = client.cancel_task(task_id)

        assert cancelled.state == "cancelled"
        events = read_stream(server.url, task_id)
        assert [e.event for e in events] == ["error"]
        assert_cancelled_terminal(check_stream(events))
        assert_conflict_on_second_cancel(client, task_id)
        time.sleep(1.2)  # past the Retry-After: the paced retry must not run
        task = client.get_task(task_id)
        assert attempt_rows(task) == [(1, "r1", "failed", "ENGINE_RATE_LIMITED")]
        assert task.state == "cancelled"
        assert_slots_free(client)
    assert len(scripted.calls) == 1


@pytest.mark.req("ORCH-0066")
def test_cancel_a_retry_waiting_for_a_slot(
    scripted: ScriptBook, make_config: Callable[..., Config]
) -> None:
    """A reset task whose retry waits for the busy other replica gives up its wait on cancel."""
    scripted.script("r1", tokens(200, token_delay_s=0.01))  # the hog
    scripted.script("r2", reset_after(0))  # the victim's first attempt
    server = scripted.serve(
        make_config(
            pools=[
                pool(
                    "default",
                    replicas=[{"replica_id": "r1", "slots": 1}, {"replica_id": "r2", "slots": 1}],
                    max_attempts=2,
                )
            ]
        )
    )
    with OrchClient(server.url) as client:
        session = client.create_session().session_id
        hog = client.submit_task(session, "hog", max_tokens=200).task_id
        victim = client.submit_task(session, "victim", max_tokens=4).task_id
        assert client.get_task(hog).replica_id == "r1"
        wait_task(client, victim, lambda t: [a.state for a in t.attempts] == ["failed"])
        assert in_flight(client) == {"default/r1": 1, "default/r2": 0}

        cancelled = client.cancel_task(victim)

        assert cancelled.state == "cancelled"
        assert attempt_rows(cancelled) == [(1, "r2", "failed", "WORKER_RESET")]
        assert_cancelled_terminal(check_stream(read_stream(server.url, victim)))
        # The hog's slot, freed by its cancel, must not be handed to the dead waiter.
        client.cancel_task(hog)
        assert_slots_free(client)
        time.sleep(0.1)
        assert attempt_rows(client.get_task(victim)) == [(1, "r2", "failed", "WORKER_RESET")]
        assert_slots_free(client)
    # The leak guard (teardown) also fails on any engine call beyond the two scripted ones.


@pytest.mark.req("ORCH-0034")
def test_deleting_the_session_cancels_its_queued_and_running_tasks(orch: StartOrch) -> None:
    o = orch(pool("default", replicas=[SLOW]))
    running = o.submit("running", max_tokens=100)
    wait_task(o.client, running, lambda t: t.tokens_out >= 1)
    queued = o.submit("queued", max_tokens=4)
    reader = StreamReader(o.url, running)

    o.client.delete_session(o.session_id)

    assert_cancelled_terminal(check_stream(reader.join()))
    for task_id in (running, queued):
        task = o.client.get_task(task_id)
        assert task.state == "cancelled"
        assert_cancelled_terminal(check_stream(read_stream(o.url, task_id)))
    assert attempt_rows(o.client.get_task(running)) == [(1, "r1", "cancelled", None)]
    assert o.client.get_task(queued).attempts == []
    assert o.client.get_pool("default").queue_depth.interactive == 0
    assert_slots_free(o.client)


@pytest.fixture
def many(orch: StartOrch) -> Orch:
    return orch(pool("default", replicas=[{**SLOW, "slots": 2}, {**SLOW, "replica_id": "r2"}]))


@pytest.mark.req("ORCH-0066", "ORCH-0067")
def test_a_burst_of_cancels_leaves_no_slot_or_queue_entry_behind(many: Orch) -> None:
    o = many
    ids = [o.submit(f"task {n}", max_tokens=60) for n in range(8)]
    wait_task(o.client, ids[0], lambda t: t.tokens_out >= 1)
    readers = [StreamReader(o.url, task_id) for task_id in ids]

    for task_id in reversed(ids):  # queued ones first, then the running ones
        assert o.client.cancel_task(task_id).state == "cancelled"

    for reader in readers:
        assert_cancelled_terminal(check_stream(reader.join()))
    view = o.client.get_pool("default")
    assert (view.queue_depth.interactive, view.queue_depth.batch) == (0, 0)
    assert_slots_free(o.client)
    for task_id in ids:
        rows = attempt_rows(o.client.get_task(task_id))
        assert all(r[2] == "cancelled" for r in rows), rows
