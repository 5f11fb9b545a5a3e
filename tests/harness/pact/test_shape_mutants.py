"""Self-tests: the API-shape snapshots fail, with syrupy's diff, on a provider that drifted.

The packaged ``test_contract_shapes`` runs as a user runs it (``--orch-url``)
against a mutant orchestratord that renames a field of the admission answer, or
adds one to the pools view; the committed snapshots must catch both, naming the
field. The control runs the same tests against the unmodified server.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.plugin.target import ServeFactory
from tests.harness.mutantkit import run_conformance
from tests.harness.pact.pact_mutants import json_body_mutant, rename_field

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.contract


def _with_eta(data: Any) -> Any:
    if isinstance(data, dict):
        for pool in data.get("pools", []):
            pool["eta_ms"] = 0
    return data


@pytest.mark.parametrize(
    ("mutant", "keyword", "field"),
    [
        (
            json_body_mutant("POST", "/v1/tasks", rename_field("queue_position", "position")),
            "admission",
            "queue_position",
        ),
        (json_body_mutant("GET", "/v1/pools", _with_eta), "pools", "eta_ms"),
    ],
    ids=["renamed field", "added field"],
)
def test_a_drifted_answer_fails_its_shape_snapshot(
    pytester: pytest.Pytester, orch_serve: ServeFactory, mutant: Any, keyword: str, field: str
) -> None:
    target = orch_serve(wrap_app=mutant)
    result = run_conformance(pytester, "test_contract_shapes", "-k", keyword, url=target.url)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert field in output, f"the diff must name the field {field!r}:\n{output[-3000:]}"
    assert "snapshot" in output.lower()


def test_the_unmodified_server_matches_the_shapes(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    target = orch_serve()
    result = run_conformance(
        pytester, "test_contract_shapes", "-k", "admission or pools or session", url=target.url
    )
    result.assert_outcomes(passed=3)
