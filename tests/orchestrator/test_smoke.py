from orchestrator.client import OrchClient
from tests.support import run_task


def test_a_strict_task_streams_to_its_end(client: OrchClient, session_id: str) -> None:
    result = run_task(client, session_id, max_tokens=8, seed=1, determinism="strict")
    assert result.ok
    assert len(result.tokens) == 8
