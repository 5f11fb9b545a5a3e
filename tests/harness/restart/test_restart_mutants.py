"""Self-tests: the restart checks fail on each broken recovery, naming its requirement.

Each mutant (:mod:`tests.harness.restart.mutants`) is ``orchq serve`` with one
mutation of its recovery, started by the harness as any implementation would be
(``--orch-serve-cmd``); the unmodified ``orchq serve`` passes the same check.
"""

from __future__ import annotations

import pytest

from tests.harness.mutantkit import assert_caught, run_conformance
from tests.harness.restart.mutants import MUTANTS, serve_command

pytest_plugins = ["pytester"]

CHECK = "test_a_crash_loses_nothing_and_every_task_recovers_as_the_spec_says"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_restart_check_catches_the_mutant(name: str, pytester: pytest.Pytester) -> None:
    _, req = MUTANTS[name]
    result = run_conformance(
        pytester, "test_contract_restart", "-k", CHECK, "--orch-serve-cmd", serve_command(name)
    )
    assert_caught(result, req, name, failed=1)
