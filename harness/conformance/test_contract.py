"""Provider verification: the recorded ``orchq-client`` pact replayed against the target.

Every interaction is verified on its own by the pact FFI verifier over real
HTTP, with its provider states set up through the public API, and cites the
ORCH IDs it certifies. Interactions whose states need a specially configured
server (``constrained``, ``auth``, ``faulty``: :func:`harness.pact.states.server_group`)
run on a target the harness configures (in-process, or started with
``--orch-serve-cmd``); against ``--orch-url`` they are skipped as NOT
VERIFIABLE, never passed. The ``crashing`` group (``INTERNAL``, a bug no
configuration produces) needs orchestratord in-process: it is deselected for a
target started with ``--orch-serve-cmd``.

The pact replayed is ``--orch-pact-file``, else the checkout's
``contracts/pacts/orchq-client-orchestratord.json``, else one built from the
interaction table (an installed package has no checkout).

Before any server is involved, each interaction of that pact is checked against
the OpenAPI document the run trusts (``--orch-fuzz-contract``, else the one
shipped with orchq; :mod:`harness.pact.crosscheck`): a pact may not claim a
path, method, status, header or field the document does not declare.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.conformance import PROFILE_MARKER, REFERENCE_CODE
from harness.pact.interactions import INTERACTIONS
from harness.pact.model import PACT_FILE, Interaction
from harness.pact.states import IN_PROCESS_GROUPS, LIVE_GROUPS, group_of, serve_group

pytestmark = pytest.mark.contract

_GROUP_NEEDS = {
    "constrained": "a server the harness configures with a one-slot queue, a stalled replica, "
    "a warming pool, a down pool and a 1 KiB body limit",
    "auth": "a server the harness configures with an API token it chose",
    "faulty": "a server the harness configures whose engine's replicas die or hang on purpose",
    "crashing": "an in-process orchestratord whose engine breaks the engine protocol",
}


def _param(interaction: Interaction) -> object:
    return pytest.param(
        interaction, id=interaction.description, marks=pytest.mark.req(*interaction.req)
    )


def _provider_param(interaction: Interaction) -> object:
    marks = [pytest.mark.req(*interaction.req)]
    if group_of(interaction.states) in IN_PROCESS_GROUPS:
        marks.append(getattr(pytest.mark, REFERENCE_CODE))
    if interaction.profile is not None:
        marks.append(getattr(pytest.mark, PROFILE_MARKER)(interaction.profile))
    return pytest.param(interaction, id=interaction.description, marks=marks)


@pytest.fixture(scope="session")
def contract_pact_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The pact file the provider must honour."""
    from harness.pact.pactfiles import build_from_table
    from harness.pact.plugin import committed_pact_dir, pact_file_option

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
    from harness.fuzz.document import contract_path
    from harness.fuzz.plugin import CONTRACT
    from harness.pact.openapi_document import load_openapi
    from harness.plugin.settings import orchq_session

    return load_openapi(contract_path(orchq_session(request.config).path(CONTRACT)))


@pytest.mark.parametrize("interaction", [_param(interaction) for interaction in INTERACTIONS])
def test_interaction_agrees_with_the_openapi_document(
    interaction: Interaction, contract_pact_file: Path, contract_openapi: dict[str, Any]
) -> None:
    from harness.pact.crosscheck import check_pact
    from harness.pact.openapi_document import load_pact_file

    pact = load_pact_file(contract_pact_file)
    chosen = [i for i in pact["interactions"] if i.get("description") == interaction.description]
    assert chosen, (
        f"{', '.join(interaction.req)}: interaction {interaction.description!r} is missing from "
        f"{contract_pact_file}; run `orchq pact regen`"
    )
    report = check_pact({**pact, "interactions": chosen}, contract_openapi, pact_name(pact))
    assert not report.findings, "\n".join(f.line() for f in report.findings)


def pact_name(pact: dict[str, object]) -> str:
    consumer, provider = pact.get("consumer"), pact.get("provider")
    names = [p.get("name") if isinstance(p, dict) else None for p in (consumer, provider)]
    return "-".join(str(n) for n in names if n) or "pact"


@pytest.mark.evidence("cdc")
@pytest.mark.parametrize(
    "interaction", [_provider_param(interaction) for interaction in INTERACTIONS]
)
def test_provider_honours_interaction(
    interaction: Interaction,
    request: pytest.FixtureRequest,
    contract_pact_file: Path,
    tmp_path: Path,
) -> None:
    from harness.pact.provider import verify_interaction
    from harness.plugin.target import NOT_VERIFIABLE_LIVE, Target, live_url

    group = group_of(interaction.states)
    live = live_url(request.config)
    if group in LIVE_GROUPS:
        target: Target = request.getfixturevalue("orch_target")
        token = target.token
        state_token = token
    else:
        if live:
            pytest.skip(
                f"{NOT_VERIFIABLE_LIVE}: interaction {interaction.description!r} "
                f"({', '.join(interaction.req)}) needs {_GROUP_NEEDS[group]}"
            )
        serve = request.getfixturevalue("orch_serve")
        target = serve_group(group, serve, request.getfixturevalue("orch_engine"))
        token = None  # the interaction states its own Authorization header
        state_token = target.token
    outcome = verify_interaction(
        interaction, contract_pact_file, tmp_path, target.url, token=token, state_token=state_token
    )
    assert outcome.ok, outcome.message
