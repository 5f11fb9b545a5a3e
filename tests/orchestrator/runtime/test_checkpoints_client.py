"""Checkpoints and the audit log through the typed clients: decide, list, read the log.

Spec: ORCH-0365, ORCH-0366, ORCH-0369, ORCH-0380, ORCH-0381.
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.client import AsyncOrchClient, OrchClient, OrchClientError
from tests.support import ServeFactory, wait_until

GATED = {
    "name": "gated",
    "version": "1",
    "steps": [
        {"id": "draft", "prompt": "draft", "max_tokens": 3, "checkpoint": {"when": "after"}},
        {"id": "gate", "prompt": "go", "depends_on": ["draft"], "checkpoint": {"when": "before"}},
    ],
}


def _pending(client: OrchClient, run_id: str) -> list[str]:
    page = client.list_approvals(run_id=run_id, state="pending")
    return [a.checkpoint_id for a in page.approvals]


@pytest.mark.req("ORCH-0365", "ORCH-0366", "ORCH-0369", "ORCH-0380", "ORCH-0381")
def test_the_sync_client_decides_checkpoints_and_reads_the_audit_log(
    serve: ServeFactory,
) -> None:
    server = serve()
    with OrchClient(server.url) as client:
        client.register_definition(GATED)
        session = client.create_session().session_id
        run = client.create_run(session, "gated", "1", actor="alice")
        wait_until(lambda: _pending(client, run.run_id) == ["draft.after.1"])
        retried = client.decide_checkpoint(
            run.run_id, "draft.after.1", "retry", "bob", prompt="draft again"
        )
        assert (retried.state, retried.decision, retried.decided_by) == ("decided", "retry", "bob")
        wait_until(lambda: _pending(client, run.run_id) == ["draft.after.2"])
        with pytest.raises(OrchClientError) as conflict:
            client.decide_checkpoint(run.run_id, "draft.after.1", "continue", "bob")
        assert conflict.value.status == 409
        client.decide_checkpoint(run.run_id, "draft.after.2", "continue", "carol")
        wait_until(lambda: _pending(client, run.run_id) == ["gate.before.1"])
        assert client.get_run(run.run_id).state == "awaiting_approval"
        client.decide_checkpoint(run.run_id, "gate.before.1", "abort", "dave")
        assert client.get_run(run.run_id).state == "aborted"
        log = client.get_run_audit(run.run_id)
        assert [(e.seq, e.actor, e.action) for e in log.entries] == [
            (1, "alice", "run.created"),
            (2, "bob", "checkpoint.decided"),
            (3, "carol", "checkpoint.decided"),
            (4, "dave", "checkpoint.decided"),
        ]
        assert log.entries[1].detail == {"decision": "retry", "prompt": "draft again"}


@pytest.mark.req("ORCH-0365", "ORCH-0381")
def test_the_async_client_lists_decides_and_aborts_with_an_actor(serve: ServeFactory) -> None:
    server = serve()

    async def scenario() -> None:
        async with AsyncOrchClient(server.url) as client:
            await client.register_definition(GATED)
            session = (await client.create_session()).session_id
            run = await client.create_run(session, "gated", "1")
            for _ in range(1000):
                page = await client.list_approvals(run_id=run.run_id, state="pending", limit=5)
                if page.approvals:
                    break
                await asyncio.sleep(0.01)
            assert [a.checkpoint_id for a in page.approvals] == ["draft.after.1"]
            decided = await client.decide_checkpoint(run.run_id, "draft.after.1", "continue", "x")
            assert decided.output is not None
            aborted = await client.abort_run(run.run_id, actor="erin")
            assert aborted.state == "aborted"
            log = await client.get_run_audit(run.run_id)
            assert [(e.actor, e.action) for e in log.entries] == [
                ("anonymous", "run.created"),
                ("x", "checkpoint.decided"),
                ("erin", "run.aborted"),
            ]

    asyncio.run(scenario())
