"""Self-tests: the packaged fuzz suite fails on each broken orchestrator, naming the ORCH ID.

Each mutant (:mod:`tests.harness.fuzz.mutants`) runs in-process under
``orch_serve(wrap_app=...)``; the conformance module is run against it the
way a user would, ``--pyargs harness.conformance.test_fuzz --orch-url URL``,
selecting the test whose checks the mutant breaks. The same selections pass
on the unmodified orchestratord.
"""

from __future__ import annotations

import pytest

from harness.plugin.target import ServeFactory
from tests.harness.fuzz.mutants import MUTANTS, WARMING
from tests.harness.mutantkit import assert_caught, run_conformance

pytest_plugins = ["pytester"]


def _run_suite(pytester: pytest.Pytester, url: str, selection: str) -> pytest.RunResult:
    return run_conformance(
        pytester, "test_fuzz", "-k", selection, "-p", "no:randomly", "-rf", url=url
    )


@pytest.mark.slow
def test_healthy_orchestrator_passes_what_the_mutants_break(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    selection = (
        "createTask or readyz or getTask or test_linked_workflow_meets_contract"
        " or test_linked_runs_workflow_meets_contract"
        " or test_linked_checkpoint_workflow_meets_contract"
    )
    result = _run_suite(pytester, orch_serve().url, selection)
    result.assert_outcomes(passed=6)
    warming = _run_suite(pytester, orch_serve(**WARMING).url, "readyz or createTask")
    warming.assert_outcomes(passed=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_fuzz_suite_catches_the_mutant(
    name: str, pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    wrap, config, selection, req = MUTANTS[name]
    target = orch_serve(wrap_app=wrap, **config)
    assert_caught(_run_suite(pytester, target.url, selection), req, name)
