"""The conformance suite's own pytest set-up: its markers, its Hypothesis profile, shared fixtures.

Loaded only when the suite itself is collected (``pytest --pyargs
harness.conformance``, ``orchq verify``, or a checkout's test run), never into
an unrelated project's run.

``serve_on_engine`` starts a target whose replicas are served by the harness's
own engine (``orch_engine``): a configuration in the keys of spec section 11,
so a target the harness starts from a config file gets exactly the same one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.conformance import SUITE_MARKERS
from harness.engine.control import EngineControl, ServeOnEngine, engine_pool
from harness.plugin.target import ServeFactory
from harness.properties.profile import register_profile
from harness.wire import Wire


def pytest_configure(config: pytest.Config) -> None:
    for name, text in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", "evidence(kind): the kind of evidence a test gives (harness.trace.evidence)"
    )
    register_profile()


@pytest.fixture
def serve_on_engine(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> Iterator[ServeOnEngine]:
    """Start a target with one pool of ``openai`` replicas on ``orch_engine``; wait until ready.

    ``pool_keys`` are further keys of the pool (``max_attempts``, ``decode_timeout_ms``,
    ...), ``config`` top-level keys (``fallback_mode``). The :class:`Wire` returned is
    closed (its sessions deleted) at teardown. Skipped against ``--orch-url``, like
    ``orch_serve``.
    """
    wires: list[Wire] = []

    def serve(
        pool_keys: dict[str, Any] | None = None,
        replicas: tuple[str, ...] = ("r1", "r2"),
        slots: int = 1,
        **config: Any,
    ) -> Wire:
        pool = engine_pool(orch_engine, replicas=replicas, slots=slots, **(pool_keys or {}))
        target = orch_serve(pools=[pool], **config)
        wire = Wire(target.url, target.auth_headers())
        wires.append(wire)
        wire.wait_ready()
        return wire

    yield serve
    for wire in wires:
        wire.close()
