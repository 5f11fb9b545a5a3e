"""Self-tests: the packaged queue properties catch each broken queue, naming the ORCH ID.

The conformance module is run as another implementation would use it: a test
module that star-imports ``harness.conformance.test_properties`` and redefines
the ``orch_queue_factory`` fixture, here with a mutant. Hypothesis runs
derandomized with a bounded budget, so every run finds the same counterexample;
the self-tests skip shrinking (it cost most of their time, and what they check is
that the mutant is caught with the right ORCH ID, not the smallest example).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.harness.mutantkit import INDEX
from tests.harness.properties.mutants import MUTANTS

pytest_plugins = ["pytester"]


def _run_against(
    pytester: pytest.Pytester, factory: str, settings: str = "machine_settings(shrink=False)"
) -> pytest.RunResult:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_queue_impl=textwrap.dedent(
            f"""
            import pytest

            from harness.conformance.test_properties import *  # noqa: F403
            from harness.properties import machine_settings
            from tests.harness.properties import mutants
            from orchestrator.queue import admission


            @pytest.fixture
            def orch_queue_factory():
                return {factory}


            @pytest.fixture
            def orch_queue_settings():
                return {settings}
            """
        )
    )
    return pytester.runpytest_inprocess(
        "--orch-index", str(INDEX), "-p", "no:cacheprovider", "-p", "no:randomly"
    )


def test_orchestratord_queue_passes_through_the_plugged_fixture(pytester: pytest.Pytester) -> None:
    # a smaller budget than the suite's own: this checks the plumbing, the suite the queue
    settings = "machine_settings(max_examples=15, shrink=False)"
    _run_against(pytester, "admission.PoolQueue", settings).assert_outcomes(passed=1)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_queue_properties_catch_the_mutant(name: str, pytester: pytest.Pytester) -> None:
    queue_class, req = MUTANTS[name]
    result = _run_against(pytester, f"mutants.{queue_class.__name__}")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, f"{req}: queue mutant {name!r} was not caught: {outcomes}"
    result.stdout.fnmatch_lines([f"*AssertionError: {req}: *"])


def test_the_suite_skips_against_a_live_target(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest_inprocess(
        "--pyargs",
        "harness.conformance.test_properties",
        "--orch-url",
        "http://127.0.0.1:9",
        "--orch-index",
        str(INDEX),
        "-p",
        "no:cacheprovider",
        "-rs",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*a live target (--orch-url) exposes no queue to drive*"])
