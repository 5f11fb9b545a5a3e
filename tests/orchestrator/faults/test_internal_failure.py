"""An unexpected failure while running a task ends it ``failed`` with ``INTERNAL``, never hangs.

The engine of :mod:`harness.pact.faults` breaks the engine protocol (its
``generate`` raises instead of returning a stream): orchestratord must still
bring the task to one terminal state (ORCH-0060), with the kind the spec gives
a bug (ORCH-0062, ORCH-0018), close its stream with the same error (ORCH-0020,
ORCH-0082) and keep serving.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pact.faults import crashing_engine_factory
from orchestrator.client import OrchClient
from tests.support import ServeFactory, config_with, pool, wait_until


@pytest.mark.req("ORCH-0060", "ORCH-0062", "ORCH-0018", "ORCH-0020", "ORCH-0082")
def test_a_crashing_engine_fails_the_task_internal_and_closes_its_stream(
    serve: ServeFactory, tmp_path: Path
) -> None:
    config = config_with(
        str(tmp_path / "orchq.db"),
        pools=[
            pool("crashing", replicas=[{"replica_id": "crash1"}]),
            pool("default", replicas=1),
        ],
    )
    server = serve(config, engine_factory=crashing_engine_factory)
    with OrchClient(server.url) as client:
        session_id = client.create_session().session_id
        admitted = client.submit_task(session_id, "hello", max_tokens=2, pool="crashing")
        live = {"queued", "running"}
        wait_until(lambda: client.get_task(admitted.task_id).state not in live, timeout=5.0)
        task = client.get_task(admitted.task_id)
        assert task.state == "failed", f"a task whose engine crashed is {task.state!r}"
        assert task.error is not None
        assert (task.error.kind, task.error.retriable) == ("INTERNAL", True)
        assert "engine bug" not in task.error.message, "internals leak into the task error"
        assert [a.state for a in task.attempts] == ["failed"]
        stream = client.collect_stream(admitted.task_id, reconnect=False)
        assert stream.error is not None
        assert (stream.error.kind, stream.error.message) == ("INTERNAL", task.error.message)
        # Business as usual on the other pool.
        other = client.submit_task(session_id, "hello", max_tokens=2, pool="default")
        wait_until(lambda: client.get_task(other.task_id).state == "completed", timeout=5.0)
