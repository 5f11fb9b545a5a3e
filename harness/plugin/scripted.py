"""The ``orch_scripted_engine`` fixture: a strict scripted engine owned by one test.

The engine itself is :class:`harness.plugin.scriptbook.ScriptBook` (queues of
outcomes per replica, failing loudly when exhausted); this plugin module only
imports the standard library and pytest at start-up, and re-exports the
scripting API lazily (``from harness.plugin.scripted import ScriptedEngine,
tokens, rate_limited, ...`` works).

``orch_scripted_engine.serve(**config_overrides)`` starts an in-process
orchestratord whose every replica is scripted by the book (through
``orch_serve``, so it is skipped against ``--orch-url``); the book can also be
passed as ``orch_serve(engine_factory=book.factory)`` or mounted on a respx
router for the ``openai`` engine (``book.mock_openai(respx_mock, url, "r1")``).
At teardown the servers stop first (so nothing can call an engine any more),
then the test fails if a call was still in flight, a replica was called with
its queue empty, or an outcome was never consumed: the leak is charged to the
test that owns the script, never to the next test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.plugin.scriptbook import ServedScriptBook

_EXPORTS = frozenset(
    {
        "Call",
        "Outcome",
        "ScriptBook",
        "ScriptExhausted",
        "ScriptedEngine",
        "ServedScriptBook",
        "rate_limited",
        "reset_after",
        "stall",
        "tokens",
        "unavailable",
    }
)

SETTLE_S = 5.0
"""Longest wait at teardown for engine calls to finish once the servers are stopped."""


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module("harness.plugin.scriptbook"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest.fixture
def orch_scripted_engine(request: pytest.FixtureRequest) -> Iterator[ServedScriptBook]:
    """A :class:`~harness.plugin.scriptbook.ServedScriptBook` owned by this test.

    ``orch_scripted_engine.script("r1", rate_limited(2.0), tokens())`` queues
    outcomes; ``orch_scripted_engine.serve(pools=[...], fallback_mode=...)`` returns a
    started :class:`~harness.plugin.target.Target`. Teardown: stop the servers,
    then :meth:`~harness.plugin.scriptbook.ScriptBook.verify`.
    """
    from harness.plugin.scriptbook import ServedScriptBook

    book = ServedScriptBook(test_name=request.node.nodeid, _request=request)
    yield book
    book.stop()
    book.settle(SETTLE_S)
    book.verify()
