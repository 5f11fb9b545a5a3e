"""Crash recovery: ``kill -9`` a real ``orchq serve`` and restart it on the same database.

Spec: ORCH-0045, ORCH-0060, ORCH-0116, ORCH-0137, ORCH-0140, ORCH-0141, ORCH-0142,
ORCH-0143, ORCH-0144, ORCH-0145, ORCH-0146.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestrator.client import OrchClient
from orchestrator.engines.base import GenerationRequest
from orchestrator.engines.mock import request_key, token_at
from tests.orchestrator.serve_process import StartProcess, single_slot_config, write_config
from tests.orchestrator.streams import StreamReader, raw_events
from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def crash_config(tmp_path: Path) -> Path:
    """One pool, one replica with a single slot and slow tokens: tasks queue up."""
    return single_slot_config(tmp_path / "orchq.yaml", max_attempts=3)


def expected_texts(prompt: str, seed: int, max_tokens: int) -> list[str]:
    key = request_key(GenerationRequest(prompt, seed, max_tokens, 1.0, 1.0, "v1", "strict"))
    return [token_at(key, i).text for i in range(max_tokens)]


@pytest.mark.req(
    "ORCH-0045", "ORCH-0060", "ORCH-0116", "ORCH-0137", "ORCH-0140", "ORCH-0141", "ORCH-0144"
)
def test_kill_9_loses_no_task_and_strict_streams_continue_exactly(
    crash_config: Path, tmp_path: Path, serve_process: StartProcess
) -> None:
    db = tmp_path / "orchq.db"
    first = serve_process(crash_config, db)
    with OrchClient(first.url) as client:
        session = client.create_session().session_id
        running = client.submit_task(
            session, "survive", max_tokens=40, seed=11, determinism="strict"
        ).task_id
        queued = [
            client.submit_task(session, f"q{i}", max_tokens=3, seed=i, determinism="strict").task_id
            for i in range(4)
        ]
        batch = client.submit_task(
            session, "late batch", priority="batch", max_tokens=3, seed=99, determinism="strict"
        ).task_id
        seen: list[int] = []
        for event in client.stream(running):
            seen.append(event.id)
            if len(seen) == 6:  # started + 5 tokens delivered, then the crash
                break
        wait_until(lambda: client.get_task(running).tokens_out >= 8, timeout=10)
    first.kill9()

    second = serve_process(crash_config, db)
    with OrchClient(second.url) as client:
        resumed = list(client.stream(running, last_event_id=seen[-1]))
        full = client.collect_stream(running)
        for task_id in [*queued, batch]:
            client.collect_stream(task_id)
        tasks = {t: client.get_task(t) for t in [running, *queued, batch]}

    # Exactly one terminal state each, nothing lost.
    assert {t: task.state for t, task in tasks.items()} == dict.fromkeys(tasks, "completed")
    # The strict task was retried and its stream is seamless and byte-exact.
    assert full.texts == expected_texts("survive", 11, 40)
    assert [e.id for e in full.events] == list(range(1, len(full.events) + 1))
    assert [e.id for e in resumed] == list(range(seen[-1] + 1, len(full.events) + 1))
    attempts = tasks[running].attempts
    assert [a.state for a in attempts] == ["failed", "completed"]
    assert attempts[0].error_kind == "WORKER_RESET"
    # Queued tasks kept their admission order (one slot: start order is dispatch order),
    # and the batch task got its fairness share: every 4th dispatch while both wait.
    order = sorted([*queued, batch], key=lambda t: str(tasks[t].started_at))
    assert order == [*queued[:3], batch, queued[3]]


@pytest.mark.req("ORCH-0142")
def test_kill_9_ends_a_best_effort_task_that_already_streamed_with_worker_reset(
    crash_config: Path, tmp_path: Path, serve_process: StartProcess
) -> None:
    db = tmp_path / "orchq.db"
    first = serve_process(crash_config, db)
    with OrchClient(first.url) as client:
        session = client.create_session().session_id
        task = client.submit_task(session, "fragile", max_tokens=40).task_id
        wait_until(lambda: client.get_task(task).tokens_out >= 1, timeout=10)
    first.kill9()

    second = serve_process(crash_config, db)
    with OrchClient(second.url) as client:
        result = client.collect_stream(task)
        final = client.get_task(task)
    assert final.state == "failed"
    assert final.error is not None and final.error.kind == "WORKER_RESET"
    assert result.error is not None and result.error.kind == "WORKER_RESET"
    assert [a.error_kind for a in final.attempts] == ["WORKER_RESET"]


def raw_stream(url: str, task_id: str) -> str:
    response = httpx.get(f"{url}/v1/tasks/{task_id}/stream", timeout=30)
    assert response.status_code == 200
    return response.text


@pytest.mark.req("ORCH-0143", "ORCH-0145", "ORCH-0146")
def test_kill_9_keeps_finished_tasks_and_sessions_and_exhausts_a_task_without_attempts(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    config = single_slot_config(tmp_path / "one-attempt.yaml", max_attempts=1)
    db = tmp_path / "orchq.db"
    first = serve_process(config, db)
    with OrchClient(first.url) as client:
        session = client.create_session(ttl_seconds=900)
        sid = session.session_id
        done = client.submit_task(sid, "done", max_tokens=3, seed=1, determinism="strict").task_id
        wait_until(lambda: client.get_task(done).state == "completed", timeout=10)
        cancelled = client.submit_task(sid, "cancelled", max_tokens=400).task_id
        wait_until(lambda: client.get_task(cancelled).tokens_out >= 1, timeout=10)
        client.cancel_task(cancelled)
        running = client.submit_task(
            sid, "no attempt left", max_tokens=40, seed=2, determinism="strict"
        ).task_id
        wait_until(lambda: client.get_task(running).tokens_out >= 2, timeout=10)
        before = {t: client.get_task(t) for t in (done, cancelled)}
        streams = {t: raw_stream(first.url, t) for t in (done, cancelled)}
        expires_at = client.get_session(sid).expires_at
    first.kill9()

    second = serve_process(config, db)
    with OrchClient(second.url) as client:
        result = client.collect_stream(running)
        exhausted = client.get_task(running)
        after = {t: client.get_task(t) for t in (done, cancelled)}
        assert client.get_session(sid).expires_at == expires_at, (
            "ORCH-0146: a restart changed the session's expires_at"
        )
    assert exhausted.state == "failed", f"ORCH-0143: {exhausted.state}"
    assert exhausted.error is not None and exhausted.error.kind == "REPLICA_EXHAUSTED", (
        f"ORCH-0143: a running task with no attempt left must end REPLICA_EXHAUSTED: "
        f"{exhausted.error}"
    )
    assert result.error is not None and result.error.kind == "REPLICA_EXHAUSTED"
    assert len(exhausted.attempts) == 1
    for task_id in (done, cancelled):
        keep = ("state", "error", "tokens_out", "finish_reason", "finished_at", "attempts")
        assert after[task_id].model_dump(include=set(keep)) == before[task_id].model_dump(
            include=set(keep)
        ), f"ORCH-0145: task {task_id} changed across a restart"
        assert raw_stream(second.url, task_id) == streams[task_id], (
            f"ORCH-0145: the replay of {task_id} changed across a restart"
        )
    assert after[done].state == "completed"
    assert after[cancelled].state == "cancelled"


@pytest.mark.req("ORCH-0144", "ORCH-0083", "ORCH-0081", "ORCH-0169")
def test_kill_9_never_reuses_an_event_id_a_reader_has_seen(
    tmp_path: Path, serve_process: StartProcess
) -> None:
    """Best-effort streams, fast tokens, kill -9 while readers read: every id a reader saw
    means the same event after the restart, and resuming from it reaches the task's end."""
    config = write_config(
        tmp_path / "fast.yaml",
        {
            "pools": [
                {
                    "pool_id": "default",
                    "max_attempts": 2,
                    "replicas": [{"replica_id": "r1", "slots": 8, "token_delay_ms": 2}],
                }
            ]
        },
    )
    db = tmp_path / "orchq.db"
    first = serve_process(config, db)
    with OrchClient(first.url) as client:
        session = client.create_session().session_id
        tasks = [
            client.submit_task(session, f"fast {i}", max_tokens=4000).task_id for i in range(8)
        ]
    readers = [StreamReader(first.url, task_id) for task_id in tasks]
    for reader in readers:
        reader.start()
    wait_until(lambda: all(len(r.seen) >= 30 for r in readers), timeout=20)
    first.kill9()
    for reader in readers:
        reader.join(timeout=10)

    second = serve_process(config, db)
    with OrchClient(second.url) as client:
        for reader in readers:
            last = max(reader.seen)
            resumed = raw_events(second.url, reader.task_id, last_event_id=last)
            assert resumed and resumed[0][0] == last + 1, (
                f"ORCH-0144/ORCH-0083: task {reader.task_id}: a reader saw id {last} before the "
                f"crash; resuming from it gave {[(i, e) for i, e, _ in resumed]}: the id was "
                "reused or lost"
            )
            assert resumed[-1][1] == "error", f"ORCH-0081: no closing event after {last}"
            replay = {i: (e, d) for i, e, d in raw_events(second.url, reader.task_id)}
            changed = [i for i, event in reader.seen.items() if replay.get(i) != event]
            assert not changed, (
                f"ORCH-0144: task {reader.task_id}: ids {changed[:5]} mean other events after "
                "the restart than the reader saw before it"
            )
            task = client.get_task(reader.task_id)
            assert task.state == "failed" and task.error is not None
            assert task.error.kind == "WORKER_RESET"
