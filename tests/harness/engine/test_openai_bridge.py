"""orchestratord's ``openai`` engine talking to the engine server: real uvicorn on both sides.

This is the path the real-engine gate takes, with the fake model in place of
SmolLM2, so it runs in every CI job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from harness.engine.server import EngineThread
from harness.plugin.target import ServeFactory, Target
from tests.harness.engine.fakes import FAIL_MARKER, STOP_MARKER, FakeModel
from tests.harness.engine.test_server import stream, streamed_tokens

PROMPT = "Write a haiku about queues."


@pytest.fixture
def engines() -> Iterator[list[EngineThread]]:
    threads = [EngineThread(FakeModel()).start() for _ in range(2)]
    yield threads
    for thread in threads:
        thread.stop()


def openai_pool(engines: list[EngineThread], **keys: Any) -> dict[str, Any]:
    replicas = [
        {
            "replica_id": f"e{i + 1}",
            "engine": "openai",
            "base_url": e.url,
            "model": "fake@f00d",
            "slots": 1,
        }
        for i, e in enumerate(engines)
    ]
    return {"pool_id": "default", "replicas": replicas, **keys}


def generated_tokens(target: Target) -> float:
    with target.client() as client:
        text = client.metrics_text()
    match = re.search(
        r'^orchq_generated_tokens_total\{[^}]*engine="openai"[^}]*\} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


def test_strict_tasks_stream_the_engines_tokens_identically_on_both_replicas(
    orch_serve: ServeFactory, engines: list[EngineThread]
) -> None:
    target = orch_serve(pools=[openai_pool(engines)])
    before = generated_tokens(target)
    with target.client() as client:
        session = client.create_session(ttl_seconds=600).session_id
        results = []
        for _ in range(2):  # two at once: one per replica (slots 1)
            tasks = [
                client.submit_task(
                    session,
                    PROMPT,
                    seed=11,
                    determinism="strict",
                    max_tokens=12,
                    temperature=0.8,
                    top_p=0.9,
                )
                for _ in range(2)
            ]
            results += [client.collect_stream(task.task_id) for task in tasks]
    assert all(result.ok for result in results), [r.error for r in results]
    replicas = {result.started.replica_id for result in results if result.started}
    assert replicas == {"e1", "e2"}
    streams = {tuple((t.text, t.token_id) for t in result.tokens) for result in results}
    assert len(streams) == 1, "ORCH-0114: a strict task's tokens differ between replicas"
    # The orchestrator relays the engine's own chunks: texts and vocabulary ids. A chunk
    # with no text (a token ending inside a character) is not a token for it.
    direct = [
        (text, token_id)
        for token_id, text in streamed_tokens(
            stream(
                engines[0].url, prompt=PROMPT, max_tokens=12, seed=11, temperature=0.8, top_p=0.9
            )
        )
        if text
    ]
    assert next(iter(streams)) == tuple(direct)
    started = results[0].started
    assert started is not None and started.engine == "openai"
    assert started.engine_version == "openai:fake@f00d"  # the pinned name carries the hash
    # Finish reasons come from the orchestrator's own count against max_tokens: when
    # merged characters made fewer tokens than the engine's 12, that count says "stop".
    end = results[0].end
    assert end is not None
    assert end.finish_reason == ("length" if end.tokens_out == 12 else "stop")
    assert generated_tokens(target) - before == sum(len(r.tokens) for r in results)


def test_stop_token_ends_the_task_with_finish_reason_stop(
    orch_serve: ServeFactory, engines: list[EngineThread]
) -> None:
    target = orch_serve(pools=[openai_pool(engines)])
    with target.client() as client:
        session = client.create_session(ttl_seconds=600).session_id
        task = client.submit_task(
            session, f"x {STOP_MARKER}", seed=1, max_tokens=10, temperature=0.0
        )
        result = client.collect_stream(task.task_id)
    assert result.end is not None and result.end.finish_reason == "stop"
    assert len(result.tokens) == 3


def test_a_model_failure_mid_stream_fails_a_best_effort_task_with_worker_reset(
    orch_serve: ServeFactory, engines: list[EngineThread]
) -> None:
    target = orch_serve(pools=[openai_pool(engines)])
    with target.client() as client:
        session = client.create_session(ttl_seconds=600).session_id
        task = client.submit_task(
            session, f"x {FAIL_MARKER}", seed=1, max_tokens=10, temperature=0.0
        )
        result = client.collect_stream(task.task_id)
    assert result.error is not None and result.error.kind == "WORKER_RESET"
    assert len(result.tokens) == 2


def test_a_busy_engine_429_moves_the_task_to_the_other_replica(
    orch_serve: ServeFactory,
) -> None:
    slow = FakeModel(delay_s=0.05)
    with EngineThread(slow, max_waiting=0) as busy, EngineThread(FakeModel()) as free:
        # both replicas advertise 2 slots; the busy engine refuses a second request
        pool = openai_pool([busy, free])
        for replica in pool["replicas"]:
            replica["slots"] = 2
        target = orch_serve(pools=[pool], fallback_mode="aggressive_fallback")
        with target.client() as client:
            session = client.create_session(ttl_seconds=600).session_id
            tasks = [
                client.submit_task(session, PROMPT, seed=s, determinism="strict", max_tokens=20)
                for s in range(4)
            ]
            results = [client.collect_stream(task.task_id) for task in tasks]
            details = [client.get_task(task.task_id) for task in tasks]
    assert all(result.ok for result in results), [r.error for r in results]
    assert any(len(d.attempts) > 1 for d in details), "no task met the engine's 429"
