"""Self-tests: the bounds and suggested-wait checks catch an implementation that deviates.

A bound lower than the spec's, a suggested wait or a ``retry:`` advice in the
wrong unit, a request ID cut short: each passed the conformance suite while the
spec left the value open. The checks that need no configuration run against
the mutant over ``--orch-url``; the refusal-kind checks run in-process with
every server of the run replaced by the mutant.
"""

from __future__ import annotations

import pytest

from harness.plugin.target import ServeFactory
from tests.harness.mutantkit import assert_caught, mutate_every_server, run_conformance
from tests.harness.wire.wire_mutants import BOUND_MUTANTS, CONFIGURED_BOUND_MUTANTS

pytest_plugins = ["pytester"]

MODULE = "test_contract_bounds"


@pytest.mark.slow
def test_healthy_orchestrator_passes_the_bounds(pytester: pytest.Pytester) -> None:
    run_conformance(pytester, MODULE, "-rfs").assert_outcomes(passed=13)


@pytest.mark.parametrize("name", sorted(BOUND_MUTANTS))
def test_bound_checks_catch_the_mutant_over_orch_url(
    name: str, pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    wrap, selection, req = BOUND_MUTANTS[name]
    url = orch_serve(wrap_app=wrap).url
    result = run_conformance(pytester, MODULE, "-rfs", "-k", selection, url=url)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGURED_BOUND_MUTANTS))
def test_suggested_wait_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrap, selection, req = CONFIGURED_BOUND_MUTANTS[name]
    mutate_every_server(monkeypatch, wrap_app=wrap)
    result = run_conformance(pytester, MODULE, "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)
