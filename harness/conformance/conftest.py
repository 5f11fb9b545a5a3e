"""The conformance suite's own pytest set-up: its markers, its Hypothesis profile, shared fixtures.

Loaded only when the suite itself is collected (``pytest --pyargs
harness.conformance``, ``orchq verify``, or a checkout's test run), never into
an unrelated project's run.

``wire`` is a :class:`~harness.wire.Wire` on the run's target (in-process or
``--orch-url``). ``serve_on_engine`` starts a target whose replicas are served by the harness's
own engine (``orch_engine``): a configuration in the keys of spec section 11,
so a target the harness starts from a config file gets exactly the same one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.checks import register_explainer
from harness.conformance import NOT_CLAIMED, PROFILE_MARKER, REFERENCE_CODE, SUITE_MARKERS
from harness.engine.control import EngineControl, ServeOnEngine, engine_pool
from harness.plugin.target import ServeFactory, Target, claimed_profiles, target_mode
from harness.properties.profile import register_profile
from harness.wire import Wire
from harness.wire.blame import client_blame


def pytest_configure(config: pytest.Config) -> None:
    for name, text in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", f"{PROFILE_MARKER}(name): checks an optional profile of the spec (runs)"
    )
    config.addinivalue_line(
        "markers", "evidence(kind): the kind of evidence a test gives (harness.trace.evidence)"
    )
    register_profile()
    register_explainer(client_blame)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A managed target may be any implementation: checks of orchestratord's own in-process
    code say nothing about it, so they are deselected (against ``--orch-url`` they skip).
    Last, so syrupy has seen them collected: their snapshots are not reported unused.

    Checks of a profile the target does not claim (``--orch-profile core``) are skipped
    with :data:`~harness.conformance.NOT_CLAIMED`, never run and never passed."""
    claimed = claimed_profiles(config)
    for item in items:
        marker = item.get_closest_marker(PROFILE_MARKER)
        if marker is not None and marker.args[0] not in claimed:
            reason = f"{NOT_CLAIMED}: the {marker.args[0]} profile (--orch-profile core)"
            item.add_marker(pytest.mark.skip(reason=reason))
    if target_mode(config) != "managed":
        return
    reference = [item for item in items if item.get_closest_marker(REFERENCE_CODE)]
    if reference:
        config.hook.pytest_deselected(items=reference)
        items[:] = [item for item in items if not item.get_closest_marker(REFERENCE_CODE)]


@pytest.fixture
def wire(orch_target: Target) -> Iterator[Wire]:
    """A :class:`Wire` on the run's target; its sessions are deleted at teardown."""
    with Wire(orch_target.url, orch_target.auth_headers()) as opened:
        yield opened


@pytest.fixture
def serve_on_engine(
    orch_serve: ServeFactory, orch_engine: EngineControl
) -> Iterator[ServeOnEngine]:
    """Start a target with one pool of ``openai`` replicas on ``orch_engine``; wait until ready.

    ``pool_keys`` are further keys of the pool (``max_attempts``, ``decode_timeout_ms``,
    ...), ``config`` top-level keys (``fallback_mode``). ``token_delay_ms`` slows the
    pool's replicas down (an engine fault rule per replica), so work holds its slot.
    The :class:`Wire` returned is closed (its sessions deleted) at teardown. Skipped
    against ``--orch-url``, like ``orch_serve``.
    """
    wires: list[Wire] = []

    def serve(
        pool_keys: dict[str, Any] | None = None,
        replicas: tuple[str, ...] = ("r1", "r2"),
        slots: int = 1,
        token_delay_ms: float | None = None,
        **config: Any,
    ) -> Wire:
        if token_delay_ms is not None:
            orch_engine.slow(replicas, token_delay_ms)
        pool = engine_pool(orch_engine, replicas=replicas, slots=slots, **(pool_keys or {}))
        target = orch_serve(pools=[pool], **config)
        wire = Wire(target.url, target.auth_headers())
        wires.append(wire)
        return wire

    yield serve
    for wire in wires:
        wire.close()
