"""Smoke test: one strict task streams to its end on the embedded default.

Spec: none. The requirements it touches are cited by the focused tests.
"""

from orchestrator.client import OrchClient
from tests.support import run_task


def test_a_strict_task_streams_to_its_end(client: OrchClient, session_id: str) -> None:
    result = run_task(client, session_id, max_tokens=8, seed=1, determinism="strict")
    assert result.ok
    assert len(result.tokens) == 8
