"""The leak guard itself: a scripted engine fails loudly, and teardown catches every leak.

If these pass, a test using the ``scripted`` fixture cannot leave an outcome
unconsumed, consume one too many, or leave a call running, without failing.

Spec: none. Test infrastructure (the guard of the routing and cancellation tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from orchestrator.client import OrchClient
from orchestrator.config import Config, ReplicaConfig
from orchestrator.engines.base import (
    Engine,
    EngineRateLimited,
    EngineReset,
    GenerationRequest,
    Token,
)
from tests.orchestrator.faults.faultkit import (
    ScriptBook,
    ScriptExhausted,
    check_stream,
    rate_limited,
    read_stream,
    reset_after,
    tokens,
)
from tests.support import pool

REQUEST = GenerationRequest("p", 1, 3, 1.0, 1.0, "v1", "strict")


def engine(book: ScriptBook, replica_id: str = "r1") -> Engine:
    return book.factory(ReplicaConfig(replica_id=replica_id))


async def drain(eng: Engine) -> list[Token]:
    return [t async for t in eng.generate(REQUEST)]


def test_scripted_engine_follows_its_script_in_order() -> None:
    book = ScriptBook("guard").script("r1", rate_limited(0.5), reset_after(1), tokens(2))
    eng = engine(book)
    assert isinstance(eng, Engine)

    with pytest.raises(EngineRateLimited) as limited:
        asyncio.run(drain(eng))
    assert limited.value.retry_after_s == 0.5

    async def until_reset() -> list[Token]:
        got: list[Token] = []
        with pytest.raises(EngineReset):
            async for token in eng.generate(REQUEST):
                got.append(token)
        return got

    assert [t.index for t in asyncio.run(until_reset())] == [0]
    assert [t.index for t in asyncio.run(drain(eng))] == [0, 1]
    book.verify()
    assert book.active == 0


def test_a_call_beyond_the_script_fails_loudly_naming_the_test() -> None:
    book = ScriptBook("tests/x.py::test_y").script("r1", tokens())
    eng = engine(book)
    asyncio.run(drain(eng))

    with pytest.raises(ScriptExhausted, match=r"tests/x.py::test_y.*'r1'.*call #2"):
        asyncio.run(drain(eng))
    with pytest.raises(AssertionError, match="no outcome left"):
        book.verify()


def test_leftover_outcomes_fail_verification() -> None:
    book = ScriptBook("leftover").script("r1", tokens()).script("r2", rate_limited(1.0))
    asyncio.run(drain(engine(book)))

    with pytest.raises(AssertionError, match=r"unconsumed scripted outcomes: \{'r2'"):
        book.verify()


def test_a_call_still_in_flight_fails_verification() -> None:
    book = ScriptBook("in flight").script("r1", tokens(3, token_delay_s=0.01))

    async def one_token() -> None:
        stream = engine(book).generate(REQUEST).__aiter__()
        await anext(stream)
        with pytest.raises(AssertionError, match="1 engine call"):
            book.verify()
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(one_token())
    book.verify()


def test_an_exhausted_script_inside_the_server_fails_the_task_and_the_guard(
    scripted: ScriptBook, make_config: Callable[..., Config]
) -> None:
    """An engine script run dry inside the server ("No more mock responses queued") is seen."""
    scripted.script("r1", tokens())
    server = scripted.serve(make_config(pools=[pool("default", replicas=1, max_attempts=1)]))
    with OrchClient(server.url) as client:
        session = client.create_session().session_id
        ok = client.submit_task(session, "one", max_tokens=2).task_id
        assert check_stream(read_stream(server.url, ok)).event == "end"
        extra = client.submit_task(session, "two", max_tokens=2).task_id
        terminal = check_stream(read_stream(server.url, extra))

    assert terminal.event == "error"
    assert terminal.data["kind"] == "REPLICA_EXHAUSTED"
    assert scripted.test_name in terminal.data["message"]
    with pytest.raises(AssertionError, match="no outcome left for call #2"):
        scripted.verify()
    scripted.extra_calls.clear()  # seen; let this test's own teardown pass
