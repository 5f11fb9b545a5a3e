"""Self-tests: the runs checks pass on orchestratord and fail, naming the rule, on each mutant.

The conformance module runs in-process the way a user runs it (``--pyargs
harness.conformance.test_contract_runs``), first against the healthy
orchestratord, then with one rule of section 12 broken in every orchestratord
it starts (:mod:`tests.harness.runs.mutants`), selecting the check that must
catch it.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from harness.properties.profile import PROFILE, register_profile
from tests.harness.mutantkit import (
    App,
    Receive,
    Scope,
    Send,
    assert_caught,
    mutate_every_server,
    respond,
    run_conformance,
)
from tests.harness.restart.mutants import (
    CHECKPOINT_RESTART_MUTANTS,
    RUN_MUTANTS,
    SUBORCH_RESTART_MUTANTS,
    serve_command,
)
from tests.harness.runs.mutants import CHECKPOINT_MUTANTS, MUTANTS, SUBORCH_MUTANTS

pytest_plugins = ["pytester"]

CHECKS = 12
"""The checks of ``test_contract_runs``, all passing against the healthy orchestratord."""
CHECKPOINT_CHECKS = 8
NO_SHRINK = "orchq-checkpoint-self-test"
"""The suite's Hypothesis profile without shrinking (the machine self-tests)."""
"""The checks of ``test_contract_checkpoints``."""
SUBORCH_CHECKS = 9
"""The checks of ``test_contract_suborch``."""


@pytest.mark.slow
def test_healthy_orchestrator_passes(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_contract_runs", "-rfs")
    result.assert_outcomes(passed=CHECKS)


def _core_only(app: App) -> App:
    """A target without the runs profile: ``/v1/definitions`` and ``/v1/runs`` are 404."""
    body = (
        b'{"error": {"kind": "NOT_FOUND", "message": "no such path", "retriable": false, '
        b'"request_id": "r"}}'
    )

    async def core(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path.startswith(("/v1/definitions", "/v1/runs")):
            headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r")]
            await respond(send, 404, headers, body)
            return
        await app(scope, receive, send)

    return core


def test_a_core_only_target_fails_the_runs_checks_unless_it_says_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a silent pass: without ``--orch-profile core`` the runs checks fail; with it,
    each is skipped as not claimed."""
    mutate_every_server(monkeypatch, wrap_app=_core_only)
    failing = run_conformance(pytester, "test_contract_runs", "-k", "registered_once")
    assert_caught(failing, "ORCH-0312", "a core-only target", failed=1)
    core = run_conformance(pytester, "test_contract_runs", "--orch-profile", "core", "-rs")
    core.assert_outcomes(skipped=CHECKS)
    core.stdout.fnmatch_lines(["*NOT CLAIMED by the target: the runs profile*"])


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_runs_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, selection, req = MUTANTS[name]
    mutate(monkeypatch)
    result = run_conformance(pytester, "test_contract_runs", "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
def test_healthy_orchestrator_passes_the_suborchestration_checks(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_contract_suborch", "-rfs")
    result.assert_outcomes(passed=SUBORCH_CHECKS)


@pytest.mark.parametrize("name", sorted(SUBORCH_MUTANTS))
def test_suborchestration_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, selection, req = SUBORCH_MUTANTS[name]
    mutate(monkeypatch)
    result = run_conformance(pytester, "test_contract_suborch", "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
def test_healthy_orchestrator_passes_the_checkpoint_checks(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_contract_checkpoints", "-rfs")
    result.assert_outcomes(passed=CHECKPOINT_CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKPOINT_MUTANTS))
def test_checkpoint_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, selection, req = CHECKPOINT_MUTANTS[name]
    mutate(monkeypatch)
    result = run_conformance(pytester, "test_contract_checkpoints", "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUN_MUTANTS))
def test_the_runs_restart_check_catches_the_mutant(name: str, pytester: pytest.Pytester) -> None:
    _, req = RUN_MUTANTS[name]
    result = run_conformance(
        pytester, "test_contract_runs_restart", "--orch-serve-cmd", serve_command(name)
    )
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
def test_a_paused_run_survives_a_restart_of_the_healthy_orchestrator(
    pytester: pytest.Pytester,
) -> None:
    result = run_conformance(pytester, "test_contract_checkpoints_restart", "-rfs")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKPOINT_RESTART_MUTANTS))
def test_the_checkpoint_restart_check_catches_the_mutant(
    name: str, pytester: pytest.Pytester
) -> None:
    _, req = CHECKPOINT_RESTART_MUTANTS[name]
    result = run_conformance(
        pytester, "test_contract_checkpoints_restart", "--orch-serve-cmd", serve_command(name)
    )
    assert_caught(result, req, name, failed=1)


MACHINE_CATCHES = {
    **{
        name: CHECKPOINT_MUTANTS[name]
        for name in (
            "a checkpoint that does not block",
            "a checkpoint decided twice",
            "an audit log missing a decision",
        )
    },
    **{
        name: mutant
        for name, mutant in SUBORCH_MUTANTS.items()
        if name
        not in (
            "a child's unknown pool found only when the child starts",
            "an abort that leaves a child run running",
        )
    },
}
"""The mutants the state machine must find by itself, from random graphs: the checkpoint
ones (it holds no failing step) and those of fan-outs and of a step's children. Its graphs
name known pools only, and an abort meets a child still running in too few examples for a
self-test that must always catch; the contract check ``aborts_every_descendant`` does."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MACHINE_CATCHES))
def test_the_runs_state_machine_catches_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hypothesis machine finds each mutant by itself, from random graphs."""
    mutate, _, req = MACHINE_CATCHES[name]
    mutate(monkeypatch)
    register_profile()
    # Shrinking costs most of the time, and what is checked is the catch, not the example.
    settings.register_profile(
        NO_SHRINK, settings.get_profile(PROFILE), phases=[p for p in Phase if p != Phase.shrink]
    )
    result = run_conformance(
        pytester, "test_properties_runs", "-rfs", "--hypothesis-profile", NO_SHRINK
    )
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
def test_a_fan_out_survives_a_restart_of_the_healthy_orchestrator(
    pytester: pytest.Pytester,
) -> None:
    result = run_conformance(pytester, "test_contract_suborch_restart", "-rfs")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SUBORCH_RESTART_MUTANTS))
def test_the_suborchestration_restart_check_catches_the_mutant(
    name: str, pytester: pytest.Pytester
) -> None:
    _, req = SUBORCH_RESTART_MUTANTS[name]
    result = run_conformance(
        pytester, "test_contract_suborch_restart", "--orch-serve-cmd", serve_command(name)
    )
    assert_caught(result, req, name, failed=1)
