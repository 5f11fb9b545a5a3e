"""Self-tests: the webhooks checks pass on orchestratord and fail, naming the rule, on each mutant.

The conformance module runs in-process the way a user runs it (``--pyargs
harness.conformance.test_contract_webhooks``), with one rule of section 12.9
broken in every orchestratord it starts (:mod:`tests.harness.webhooks.mutants`),
selecting the check that must catch it; the restart mutant is a serve command.
"""

from __future__ import annotations

import pytest

from tests.harness.mutantkit import assert_caught, run_conformance
from tests.harness.restart.mutants import WEBHOOK_MUTANTS, serve_command
from tests.harness.webhooks.mutants import MUTANTS, RESTART_SELECTION

pytest_plugins = ["pytester"]


def test_the_checks_that_catch_mutants_pass_on_orchestratord(pytester: pytest.Pytester) -> None:
    selections = sorted({selection for _, selection, _ in MUTANTS.values()})
    result = run_conformance(pytester, "test_contract_webhooks", "-k", " or ".join(selections))
    result.assert_outcomes(passed=len(selections))


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_webhooks_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutate, selection, req = MUTANTS[name]
    mutate(monkeypatch)
    result = run_conformance(pytester, "test_contract_webhooks", "-rfs", "-k", selection)
    assert_caught(result, req, name, failed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WEBHOOK_MUTANTS))
def test_the_webhooks_restart_check_catches_the_mutant(
    name: str, pytester: pytest.Pytester
) -> None:
    _, req = WEBHOOK_MUTANTS[name]
    result = run_conformance(
        pytester,
        "test_contract_webhooks",
        "-k",
        RESTART_SELECTION,
        "--orch-serve-cmd",
        serve_command(name),
    )
    assert_caught(result, req, name, failed=1)
