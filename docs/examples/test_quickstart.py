"""The example tests of docs/developer.md: session-first fixtures, the req marker, a script.

They run against the in-process orchestratord (a fresh one per test) or, with
``--orch-url``, against any OrchQueue v1 server; the scripted one needs a
server it configures and skips against ``--orch-url``.
"""

from __future__ import annotations

import pytest

from harness.plugin.fixtures import MakeSession
from harness.plugin.scriptbook import ServedScriptBook
from harness.plugin.scripted import rate_limited, tokens
from orchestrator.client import OrchClient, OrchError

ONE_REPLICA = [{"pool_id": "default", "max_attempts": 2, "replicas": [{"replica_id": "r1"}]}]


@pytest.mark.determinism
@pytest.mark.req("ORCH-0113")
def test_same_seed_gives_the_same_tokens(
    orch_make_session: MakeSession, orch_client: OrchClient
) -> None:
    session = orch_make_session()
    runs = []
    for _ in range(2):
        admitted = orch_client.submit_task(
            session.session_id, "hello", seed=7, determinism="strict", max_tokens=8
        )
        result = orch_client.collect_stream(admitted.task_id)
        runs.append([(t.text, t.token_id) for t in result.tokens])
    assert runs[0] == runs[1], f"ORCH-0113: strict tokens differ for one seed: {runs}"


@pytest.mark.contract
@pytest.mark.req("ORCH-0041")
def test_strict_without_a_seed_is_refused(
    orch_make_session: MakeSession, orch_client: OrchClient
) -> None:
    session = orch_make_session()
    with pytest.raises(OrchError) as refused:
        orch_client.submit_task(session.session_id, "hello", determinism="strict")
    assert (refused.value.status, refused.value.kind) == (400, "INVALID_PARAMS"), (
        f"ORCH-0041: strict without a seed must be 400 INVALID_PARAMS, got {refused.value}"
    )


@pytest.mark.contract
def test_a_rate_limited_engine_is_retried(orch_scripted_engine: ServedScriptBook) -> None:
    target = orch_scripted_engine.serve(pools=ONE_REPLICA)
    orch_scripted_engine.script("r1", rate_limited(0.0), tokens(3))
    with target.client() as client:
        session = client.create_session()
        admitted = client.submit_task(session.session_id, "hello", max_tokens=5)
        result = client.collect_stream(admitted.task_id)
    assert len(result.tokens) == 3
    assert orch_scripted_engine.call_log() == [("r1", "429(retry_after=0.0s)"), ("r1", "tokens(3)")]
