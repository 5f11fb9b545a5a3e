"""Self-tests: the packaged metrics suite fails on each broken orchestrator, naming the ORCH ID.

Each mutant runs in-process (``orch_serve(wrap_app=...)``) and the conformance
module is run against it as a user would, with ``--pyargs
harness.conformance.test_metrics --orch-url URL``; the healthy server passes.
"""

from __future__ import annotations

import pytest

from harness.plugin.target import ServeFactory
from tests.harness.metrics.mutants import (
    MUTANTS,
    RUN_MUTANTS,
    TRUTH_MUTANTS,
    metrics_rewriter,
)
from tests.harness.mutantkit import assert_caught, mutate_every_server, run_conformance

pytest_plugins = ["pytester"]


def _run_suite(pytester: pytest.Pytester, url: str) -> pytest.RunResult:
    return run_conformance(pytester, "test_metrics", "-p", "no:randomly", "-rfs", url=url)


def test_healthy_orchestrator_passes_the_metrics_suite(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    target = orch_serve()
    result = _run_suite(pytester, target.url)
    # the orch_serve tests (configured servers) skip against --orch-url, never pass
    result.assert_outcomes(passed=6, skipped=4)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_metrics_suite_catches_the_mutant(
    name: str, pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    transform, req = MUTANTS[name]
    target = orch_serve(wrap_app=metrics_rewriter(transform))
    assert_caught(_run_suite(pytester, target.url), req, name)


TRUTH_CHECK = "test_metrics_equal_the_truth"


def test_healthy_orchestrator_passes_the_ground_truth_check(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_metrics", "-rfs", "-k", TRUTH_CHECK)
    result.assert_outcomes(passed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TRUTH_MUTANTS))
def test_ground_truth_check_catches_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    transform, req = TRUTH_MUTANTS[name]
    mutate_every_server(monkeypatch, wrap_app=metrics_rewriter(transform))
    result = run_conformance(pytester, "test_metrics", "-rfs", "-k", TRUTH_CHECK)
    assert_caught(result, req, name, failed=1)


def test_healthy_orchestrator_passes_the_run_metrics_check(pytester: pytest.Pytester) -> None:
    result = run_conformance(pytester, "test_metrics_runs", "-rfs")
    result.assert_outcomes(passed=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUN_MUTANTS))
def test_run_metrics_check_catches_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    transform, req = RUN_MUTANTS[name]
    mutate_every_server(monkeypatch, wrap_app=metrics_rewriter(transform))
    result = run_conformance(pytester, "test_metrics_runs", "-rfs")
    assert_caught(result, req, name, failed=1)
