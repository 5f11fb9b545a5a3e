"""Self-tests: the checks driven through the harness's engine fail on each broken orchestrator.

The modules run in-process the way a user runs them (``--pyargs
harness.conformance.<module>``), first against the healthy orchestratord (every
check passes), then with every orchestratord they start replaced by the mutant
of :mod:`tests.harness.engine.mutants`, selecting the check the mutant breaks:
it must fail, naming the ORCH ID.
"""

from __future__ import annotations

import pytest

from tests.harness.engine.mutants import MUTANTS
from tests.harness.mutantkit import assert_caught, mutate_every_server, run_conformance

pytest_plugins = ["pytester"]

HEALTHY = {"test_contract_engine": 8, "test_determinism_engine": 1}
"""module -> its checks, all passing against the healthy orchestratord."""


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(HEALTHY))
def test_healthy_orchestrator_passes(module: str, pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, module, "-rfs")
    result.assert_outcomes(passed=HEALTHY[module])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_engine_driven_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutation, module, selection, req = MUTANTS[name]
    mutate_every_server(monkeypatch, **mutation)
    result = run_conformance(pytester, module, "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)
