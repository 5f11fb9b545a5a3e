"""Self-tests: the runs checks pass on orchestratord and fail, naming the rule, on each mutant.

The conformance module runs in-process the way a user runs it (``--pyargs
harness.conformance.test_contract_runs``), first against the healthy
orchestratord, then with one rule of section 12 broken in every orchestratord
it starts (:mod:`tests.harness.runs.mutants`), selecting the check that must
catch it.
"""

from __future__ import annotations

import pytest

from tests.harness.mutantkit import assert_caught, run_conformance
from tests.harness.restart.mutants import RUN_MUTANTS, serve_command
from tests.harness.runs.mutants import MUTANTS

pytest_plugins = ["pytester"]

CHECKS = 11
"""The checks of ``test_contract_runs``, all passing against the healthy orchestratord."""


@pytest.mark.slow
def test_healthy_orchestrator_passes(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_contract_runs", "-rfs")
    result.assert_outcomes(passed=CHECKS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_runs_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, selection, req = MUTANTS[name]
    mutate(monkeypatch)
    result = run_conformance(pytester, "test_contract_runs", "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUN_MUTANTS))
def test_the_runs_restart_check_catches_the_mutant(name: str, pytester: pytest.Pytester) -> None:
    _, req = RUN_MUTANTS[name]
    result = run_conformance(
        pytester, "test_contract_runs_restart", "--orch-serve-cmd", serve_command(name)
    )
    assert_caught(result, req, name, failed=1)
