"""Provider verification: the recorded ``orchq-client`` pact replayed against the target.

Every interaction is verified on its own by the pact FFI verifier over real
HTTP, with its provider states set up through the public API, and cites the
ORCH IDs it certifies. Interactions whose states need a specially configured
server (``constrained``, ``auth``, ``faulty`` in :data:`harness.contract.states.GROUP_CONFIGS`)
run on an in-process orchestratord; against ``--orch-url`` they are skipped as
NOT VERIFIABLE, never passed.

The pact replayed is ``--orch-pact-file``, else the checkout's
``contracts/pacts/orchq-client-orchestratord.json``, else one built from the
interaction table (an installed package has no checkout).

Before any server is involved, each interaction of that pact is checked against
the OpenAPI document the run trusts (``--orch-fuzz-contract``, else the one
shipped with orchq; :mod:`harness.contract.crosscheck`): a pact may not claim a
path, method, status, header or field the document does not declare.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.contract.interactions import INTERACTIONS, PACT_FILE, Spec
from harness.contract.states import GROUP_CONFIGS, LIVE_GROUPS, group_of

pytestmark = pytest.mark.contract

_GROUP_NEEDS = {
    "constrained": "an in-process server with a one-slot queue, a stalled replica, "
    "a warming pool, a down pool and a 1 KiB body limit",
    "auth": "an in-process server with an API token it chose",
    "faulty": "an in-process server whose replicas reset, stall or crash on purpose",
}


def _param(spec: Spec) -> object:
    return pytest.param(spec, id=spec.description, marks=pytest.mark.req(*spec.req))


@pytest.fixture(scope="session")
def contract_pact_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The pact file the provider must honour."""
    from harness.contract.pactfiles import build_from_table
    from harness.contract.plugin import committed_pact_dir, pact_file_option

    os.environ.setdefault("PACT_DO_NOT_TRACK", "true")
    chosen = pact_file_option(request.config)
    if chosen is not None:
        if not chosen.is_file():
            pytest.fail(f"--orch-pact-file {chosen}: no such file", pytrace=False)
        return chosen
    committed = committed_pact_dir() / PACT_FILE
    if committed.is_file():
        return committed
    return build_from_table(tmp_path_factory.mktemp("pact-table"))


@pytest.fixture(scope="session")
def contract_openapi(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The OpenAPI document the pact must agree with, read once per run."""
    from harness.contract.crosscheck import load_openapi
    from harness.fuzz.contract import contract_path
    from harness.fuzz.plugin import CONTRACT
    from harness.plugin.settings import orchq_session

    return load_openapi(contract_path(orchq_session(request.config).path(CONTRACT)))


@pytest.mark.parametrize("spec", [_param(spec) for spec in INTERACTIONS])
def test_interaction_agrees_with_the_openapi_document(
    spec: Spec, contract_pact_file: Path, contract_openapi: dict[str, Any]
) -> None:
    from harness.contract.crosscheck import check_pact, load_pact_file

    pact = load_pact_file(contract_pact_file)
    chosen = [i for i in pact["interactions"] if i.get("description") == spec.description]
    assert chosen, (
        f"{', '.join(spec.req)}: interaction {spec.description!r} is missing from "
        f"{contract_pact_file}; run `orchq pact regen`"
    )
    report = check_pact({**pact, "interactions": chosen}, contract_openapi, pact_name(pact))
    assert not report.findings, "\n".join(f.line() for f in report.findings)


def pact_name(pact: dict[str, object]) -> str:
    consumer, provider = pact.get("consumer"), pact.get("provider")
    names = [p.get("name") if isinstance(p, dict) else None for p in (consumer, provider)]
    return "-".join(str(n) for n in names if n) or "pact"


@pytest.mark.evidence("cdc")
@pytest.mark.parametrize("spec", [_param(spec) for spec in INTERACTIONS])
def test_provider_honours_interaction(
    spec: Spec, request: pytest.FixtureRequest, contract_pact_file: Path, tmp_path: Path
) -> None:
    from harness.contract.provider import verify_spec
    from harness.plugin.target import NOT_VERIFIABLE_LIVE, Target, live_url

    group = group_of(spec.states)
    live = live_url(request.config)
    if group in LIVE_GROUPS:
        target: Target = request.getfixturevalue("orch_target")
        token = target.token
        state_token = token
    else:
        if live:
            pytest.skip(
                f"{NOT_VERIFIABLE_LIVE}: interaction {spec.description!r} "
                f"({', '.join(spec.req)}) needs {_GROUP_NEEDS[group]}"
            )
        target = request.getfixturevalue("orch_serve")(**GROUP_CONFIGS[group])
        token = None  # the interaction states its own Authorization header
        state_token = target.token
    outcome = verify_spec(
        spec, contract_pact_file, tmp_path, target.url, token=token, state_token=state_token
    )
    assert outcome.ok, outcome.message
