"""Self-tests: the HTTP conformance modules fail on each broken orchestrator, naming the ORCH ID.

Each mutant (:mod:`tests.harness.wire.wire_mutants`) runs in-process under
``orch_serve(wrap_app=...)``; the conformance module is run against it the way
a user would (``--pyargs harness.conformance.test_contract_http --orch-url URL``),
in-process (a subprocess costs ~5 s of imports per run here), selecting the
check the mutant breaks. The unmodified
orchestratord passes the same modules over ``--orch-url`` (the checks that need
a configured server skip there, with the standard reason, and must not pass);
in-process, the project's own run of ``harness/conformance`` passes them all.
"""

from __future__ import annotations

import pytest

from harness.plugin.target import LIVE_TARGET_SKIP, ServeFactory
from tests.harness.mutantkit import assert_caught, mutate_every_server, run_conformance
from tests.harness.wire.wire_mutants import IN_PROCESS_MUTANTS, MUTANTS

pytest_plugins = ["pytester"]

HEALTHY_OVER_URL = {
    "test_contract_http": {"passed": 5, "skipped": 2},
    "test_contract_lifecycle": {"passed": 8, "skipped": 2},
    "test_contract_pools": {"passed": 2, "skipped": 2},
    "test_contract_stream": {"passed": 8, "skipped": 3},
    "test_contract_queue": {"skipped": 6},
}
"""module -> its outcomes against a healthy live target: configured-server checks skip."""


def _run(pytester: pytest.Pytester, url: str, module: str, *args: str) -> pytest.RunResult:
    return run_conformance(pytester, module, "-rfs", *args, url=url)


@pytest.mark.slow
def test_healthy_orchestrator_passes_over_orch_url(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    url = orch_serve().url
    for module, expected in HEALTHY_OVER_URL.items():
        result = _run(pytester, url, module)
        outcomes = result.parseoutcomes()
        outcomes.pop("warnings", None)
        assert outcomes == expected, (
            f"{module} against a healthy orchestratord over --orch-url: {outcomes}, expected "
            f"{expected}\n" + result.stdout.str()[-3000:]
        )
        result.stdout.fnmatch_lines([f"*{LIVE_TARGET_SKIP[:60]}*"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_contract_http_catches_the_mutant(
    name: str, pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    wrap, module, selection, req = MUTANTS[name]
    result = _run(pytester, orch_serve(wrap_app=wrap).url, module, "-k", selection)
    assert_caught(result, req, name, failed=1)


def _run_in_process(pytester: pytest.Pytester, module: str, *args: str) -> pytest.RunResult:
    return run_conformance(pytester, module, "-rfs", *args)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IN_PROCESS_MUTANTS))
def test_configured_server_checks_catch_the_mutant(
    name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrap, module, selection, req = IN_PROCESS_MUTANTS[name]
    healthy = _run_in_process(pytester, module, "-k", selection)
    healthy.assert_outcomes(passed=1)
    mutate_every_server(monkeypatch, wrap_app=wrap)
    result = _run_in_process(pytester, module, "-k", selection)
    assert_caught(result, req, name, failed=1)
