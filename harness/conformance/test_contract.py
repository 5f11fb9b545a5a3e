"""Provider verification: the recorded ``orchq-client`` pact replayed against the target.

Every interaction is verified on its own by the pact FFI verifier over real
HTTP, with its provider states set up through the public API, and cites the
ORCH IDs it certifies. Interactions whose states need a specially configured
server (``constrained``, ``auth``: :func:`harness.contract.states.server_group`)
run on a target the harness configures (in-process, or started with
``--orch-serve-cmd``); against ``--orch-url`` they are skipped as NOT
VERIFIABLE, never passed.

The pact replayed is ``--orch-pact-file``, else the checkout's
``contracts/pacts/orchq-client-orchestratord.json``, else one built from the
interaction table (an installed package has no checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.contract.interactions import INTERACTIONS, PACT_FILE, Spec
from harness.contract.states import LIVE_GROUPS, group_of, server_group

pytestmark = pytest.mark.contract

_GROUP_NEEDS = {
    "constrained": "a server the harness configures with a one-slot queue, a stalled replica, "
    "a warming pool, a down pool and a 1 KiB body limit",
    "auth": "a server the harness configures with an API token it chose",
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
        engine = request.getfixturevalue("orch_engine")
        setup = server_group(group, engine)
        engine.set_faults(setup.faults)
        target = request.getfixturevalue("orch_serve")(**setup.config, ready=setup.ready)
        token = None  # the interaction states its own Authorization header
        state_token = target.token
    outcome = verify_spec(
        spec, contract_pact_file, tmp_path, target.url, token=token, state_token=state_token
    )
    assert outcome.ok, outcome.message
