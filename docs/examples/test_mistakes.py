"""Deliberate mistakes for docs/troubleshooting.md: what the orchq guards say about them.

Each test here FAILS on purpose (``pytest docs/examples/test_mistakes.py`` exits 1);
docs/troubleshooting.md shows the one line each guard prints.
"""

from __future__ import annotations

import threading
import time

from harness.plugin.scriptbook import ServedScriptBook
from harness.plugin.scripted import tokens
from orchestrator.client import OrchClient

KEPT: list[object] = []
"""Streams kept alive past their test, as a forgotten cache or global would."""

ONE_REPLICA = [{"pool_id": "default", "max_attempts": 1, "replicas": [{"replica_id": "r1"}]}]


def test_leaves_a_thread_running(orch_client: OrchClient) -> None:
    orch_client.health()
    threading.Thread(target=time.sleep, args=(5.0,), name="forgotten", daemon=True).start()


def test_leaves_a_stream_open(orch_client: OrchClient) -> None:
    session = orch_client.create_session()
    admitted = orch_client.submit_task(session.session_id, "hello", max_tokens=8)
    stream = orch_client.stream(admitted.task_id)
    next(stream)  # read the first event, then keep the stream around, unfinished
    KEPT.append(stream)


def test_script_is_one_outcome_short(orch_scripted_engine: ServedScriptBook) -> None:
    target = orch_scripted_engine.serve(pools=ONE_REPLICA)
    orch_scripted_engine.script("r1", tokens())
    with target.client() as client:
        session = client.create_session()
        for _ in range(2):
            admitted = client.submit_task(session.session_id, "hello", max_tokens=3)
            client.collect_stream(admitted.task_id)
