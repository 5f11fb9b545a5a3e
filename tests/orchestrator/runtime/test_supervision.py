"""A runner that fails unexpectedly ends its task ``failed`` with ``INTERNAL``; the server goes on.

The engine here yields a token the runtime cannot encode: the exception is
raised by the runtime's own code, outside the engine error handling, which is
where a runner would die with its exception never retrieved.

Spec: ORCH-0060, ORCH-0062, ORCH-0173.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.client import OrchClient
from orchestrator.config import ReplicaConfig
from orchestrator.engines import Engine, build_engine
from orchestrator.engines.base import GenerationRequest, Token
from tests.support import ConfigFactory, ServeFactory, pool, wait_until


class UnencodableTokenEngine:
    """The mock engine, except that a prompt starting with "break" gets an unencodable token."""

    def __init__(self, inner: Engine) -> None:
        self._inner = inner
        self.name, self.version = inner.name, inner.version

    async def warmup(self) -> None:
        await self._inner.warmup()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token]:
        async for token in self._inner.generate(request):
            if request.prompt.startswith("break") and token.index == 2:
                yield Token(token.index, object(), token.token_id)  # type: ignore[arg-type]
            else:
                yield token

    async def aclose(self) -> None:
        await self._inner.aclose()


def _factory(replica: ReplicaConfig) -> Engine:
    return UnencodableTokenEngine(build_engine(replica))


@pytest.mark.req("ORCH-0060", "ORCH-0062", "ORCH-0173")
def test_an_unexpected_failure_while_running_fails_the_task_with_internal(
    serve: ServeFactory, make_config: ConfigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    replica = {"replica_id": "r1", "slots": 1}
    server = serve(
        make_config(pools=[pool("default", replicas=[replica])]), engine_factory=_factory
    )
    with OrchClient(server.url) as client:
        sid = client.create_session().session_id
        broken = client.submit_task(sid, "break me", max_tokens=8).task_id
        try:
            wait_until(lambda: client.get_task(broken).state != "running", timeout=10)
        except AssertionError:
            raise AssertionError(
                "ORCH-0173: the task stayed running after its runner failed"
            ) from None
        result = client.collect_stream(broken)
        assert result.error is not None, f"ORCH-0173: the stream ended with {result}"
        assert (result.error.kind, result.error.retriable) == ("INTERNAL", True)
        task = client.get_task(broken)
        assert task.state == "failed" and task.error is not None
        assert task.error.kind == "INTERNAL"
        assert [t.index for t in result.tokens] == [0, 1]
        # The slot was given back: the next task runs on the same single slot.
        after = client.submit_task(sid, "fine", max_tokens=3).task_id
        assert client.collect_stream(after).end is not None
    assert f"running task {broken} failed" in caplog.text
