"""Self-tests: the auth matrix runs against a live target with a token and catches each mutant.

The matrix (``harness.conformance.test_contract_auth``) is run the way a user
runs it against their own server: ``--orch-url URL --orch-token T``. The healthy
orchestratord passes; without ``--orch-token`` the matrix is not verifiable
(skipped with the standard reason, never passed); each mutant fails it, naming
the ORCH ID.
"""

from __future__ import annotations

import pytest

from harness.plugin.target import NOT_VERIFIABLE_LIVE, ServeFactory
from tests.harness.mutantkit import assert_caught, run_conformance
from tests.harness.wire.wire_mutants import AUTH_MUTANTS

pytest_plugins = ["pytester"]

TOKEN = "auth-matrix-s3cret"


def test_healthy_orchestrator_with_a_token_passes_over_orch_url(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    url = orch_serve(auth_token=TOKEN).url
    result = run_conformance(pytester, "test_contract_auth", "--orch-token", TOKEN, url=url)
    result.assert_outcomes(passed=2)


def test_without_a_token_the_matrix_is_not_verifiable_live(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    result = run_conformance(pytester, "test_contract_auth", "-rs", url=orch_serve().url)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"*{NOT_VERIFIABLE_LIVE}: the target was given no --orch-token*"])


@pytest.mark.parametrize("name", sorted(AUTH_MUTANTS))
def test_auth_matrix_catches_the_mutant(
    name: str, pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    make, selection, req = AUTH_MUTANTS[name]
    url = orch_serve(auth_token=TOKEN, wrap_app=make(TOKEN)).url
    result = run_conformance(
        pytester, "test_contract_auth", "--orch-token", TOKEN, "-k", selection, url=url
    )
    assert_caught(result, req, name, failed=1)
