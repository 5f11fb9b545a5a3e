"""Self-tests: the provider verification fails, naming the ORCH ID, on a provider that drifted.

The conformance module is run as a user would (``--pyargs
harness.conformance.test_contract --orch-url``) against a mutant orchestratord;
mutants of the configured groups, which ``--orch-url`` cannot reach, are checked
through :func:`harness.pact.provider.verify_interaction` on the same server setup
the conformance test uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import named_ids
from harness.engine.control import EngineControl
from harness.pact.interactions import by_description
from harness.pact.model import PACT_FILE
from harness.pact.plugin import committed_pact_dir
from harness.pact.provider import verify_interaction
from harness.pact.states import serve_group
from harness.plugin.target import ServeFactory
from tests.harness.mutantkit import run_conformance
from tests.harness.pact.pact_mutants import (
    MUTANTS,
    RUN_STREAMS,
    drop_headers_mutant,
    json_body_mutant,
    rename_field,
    stream_text_mutant,
)

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.contract

PACT = committed_pact_dir() / PACT_FILE


def _run_conformance(pytester: pytest.Pytester, url: str, keyword: str) -> pytest.RunResult:
    return run_conformance(
        pytester,
        "test_contract",
        "--orch-pact-file",
        str(PACT),
        "-k",
        keyword,
        "-rs",
        url=url,
        subprocess=True,
    )


@pytest.mark.slow
def test_renamed_queue_position_fails_orch_0042(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    mutant = json_body_mutant("POST", "/v1/tasks", rename_field("queue_position", "position"))
    target = orch_serve(wrap_app=mutant)
    result = _run_conformance(pytester, target.url, "provider_honours and strict and not without")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "ORCH-0042" in output, "ORCH-0042: a 202 without queue_position must fail, naming it"
    assert "queue_position" in output


@pytest.mark.slow
def test_live_target_reports_configured_states_not_verifiable(
    pytester: pytest.Pytester, orch_serve: ServeFactory
) -> None:
    target = orch_serve()
    result = _run_conformance(pytester, target.url, "provider_honours and list and pools")
    # "list pools" needs only the public API; the wrong-token case needs a server with a token.
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*NOT VERIFIABLE against --orch-url*list pools with a wrong token*"]
    )


def _constrained(orch_serve: ServeFactory, engine: EngineControl, **keywords: object) -> str:
    return serve_group("constrained", orch_serve, engine, **keywords).url


def test_dropped_retry_after_fails_orch_0021(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    spec = by_description()["submit a task while the queue of pool default is full"]
    url = _constrained(orch_serve, orch_engine, wrap_app=drop_headers_mutant("Retry-After"))
    outcome = verify_interaction(spec, PACT, tmp_path, url)
    assert not outcome.ok, "ORCH-0021: a 429 without Retry-After passed the pact"
    assert "ORCH-0021" in outcome.message
    assert "Retry-After" in outcome.message


def test_renamed_stream_url_fails_orch_0042(orch_serve: ServeFactory, tmp_path: Path) -> None:
    spec = by_description()["submit a best-effort task without a seed"]
    mutant = json_body_mutant("POST", "/v1/tasks", rename_field("stream_url", "events_url"))
    target = orch_serve(wrap_app=mutant)
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert not outcome.ok, "ORCH-0042: a 202 without stream_url passed the pact"
    assert "ORCH-0042" in outcome.message and "stream_url" in outcome.message


def test_renamed_stream_url_fails_a_provider_state_once_naming_orch_0042(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    """A state that admits a task meets the broken 202 first: the failure names ORCH-0042 (not
    the interaction's own requirements, never replayed) after one setup, not seven retries."""
    spec = by_description()["cancel a running task"]
    mutant = json_body_mutant("POST", "/v1/tasks", rename_field("stream_url", "events_url"))
    outcome = verify_interaction(
        spec, PACT, tmp_path, _constrained(orch_serve, orch_engine, wrap_app=mutant)
    )
    assert not outcome.ok, "ORCH-0042: a 202 without stream_url passed a provider state"
    assert named_ids(outcome.message) == ("ORCH-0042",), outcome.message
    failed_setups = [line for line in outcome.message.splitlines() if "provider state '" in line]
    assert len(failed_setups) == 1, outcome.message
    assert "stream_url" in failed_setups[0]


def test_the_unmodified_server_honours_the_same_interactions(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    """The control: without the mutation the same checks pass, so the failures above are real."""
    spec = by_description()["submit a task while the queue of pool default is full"]
    outcome = verify_interaction(spec, PACT, tmp_path, _constrained(orch_serve, orch_engine))
    assert outcome.ok, outcome.message


def test_missing_interaction_is_named(orch_serve: ServeFactory, tmp_path: Path) -> None:
    spec = by_description()["check health"]
    empty = tmp_path / "empty.json"
    empty.write_text('{"consumer": {"name": "c"}, "provider": {"name": "p"}, "interactions": []}')
    target = orch_serve()
    outcome = verify_interaction(spec, empty, tmp_path, target.url)
    assert not outcome.ok
    assert "ORCH-0129" in outcome.message and "orchq pact regen" in outcome.message


def test_stream_without_retry_line_fails_orch_0073(
    orch_serve: ServeFactory, tmp_path: Path
) -> None:
    spec = by_description()["stream a completed task"]
    target = orch_serve(wrap_app=stream_text_mutant(r"retry: \d+\n\n", ""))
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert not outcome.ok, "ORCH-0073: a stream without its retry: line passed the pact"
    assert "ORCH-0073" in outcome.message


def test_stream_ids_from_zero_fail_orch_0072(orch_serve: ServeFactory, tmp_path: Path) -> None:
    spec = by_description()["stream a completed task"]
    renumber = stream_text_mutant(r"id: (\d+)\n", lambda m: f"id: {int(m.group(1)) - 1}\n")
    target = orch_serve(wrap_app=renumber)
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert not outcome.ok, "ORCH-0072: event ids 0, 1, 2 ... passed the pact"
    assert "ORCH-0072" in outcome.message


def test_stream_error_of_another_kind_fails_orch_0108(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    """An engine-side kind is pinned where it appears: the stream's closing error event."""
    spec = by_description()["stream a task that failed with WORKER_RESET"]
    mutant = stream_text_mutant(r'"kind": ?"WORKER_RESET"', '"kind":"REPLICA_RESET"')
    target = serve_group("faulty", orch_serve, orch_engine, wrap_app=mutant)
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert not outcome.ok, "ORCH-0108: a stream closed by REPLICA_RESET passed the pact"
    assert "ORCH-0108" in outcome.message


def test_internal_stream_is_honoured_on_the_crashing_server(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    """The control for the crashing group: its state really produces the kind it names."""
    spec = by_description()["stream a task that failed with INTERNAL"]
    target = serve_group("crashing", orch_serve, orch_engine)
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert outcome.ok, outcome.message


def test_a_run_without_its_location_fails_orch_0317(
    orch_serve: ServeFactory, tmp_path: Path
) -> None:
    spec = by_description()["start a run"]
    target = orch_serve(wrap_app=drop_headers_mutant("Location"))
    outcome = verify_interaction(spec, PACT, tmp_path, target.url)
    assert not outcome.ok, "ORCH-0317: a 202 run without Location passed the pact"
    assert "ORCH-0317" in outcome.message and "Location" in outcome.message


def test_a_renamed_run_event_fails_orch_0351(orch_serve: ServeFactory, tmp_path: Path) -> None:
    spec = by_description()["stream the events of a completed run"]
    mutant = stream_text_mutant("event: step.succeeded", "event: step.done", RUN_STREAMS)
    outcome = verify_interaction(spec, PACT, tmp_path, orch_serve(wrap_app=mutant).url)
    assert not outcome.ok, "ORCH-0351: a run stream with step.done events passed the pact"
    assert "ORCH-0351" in outcome.message


def test_the_unmodified_server_honours_the_run_interactions(
    orch_serve: ServeFactory, orch_engine: EngineControl, tmp_path: Path
) -> None:
    """The control of the two above, and of the configured group's run state."""
    target = orch_serve()
    for description in ("start a run", "stream the events of a completed run"):
        outcome = verify_interaction(by_description()[description], PACT, tmp_path, target.url)
        assert outcome.ok, outcome.message
    spec = by_description()["abort a running run"]
    outcome = verify_interaction(spec, PACT, tmp_path, _constrained(orch_serve, orch_engine))
    assert outcome.ok, outcome.message


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("second checkpoint decision answered 200", "expected 409 but was 200"),
        ("webhook shown with its secret", "$.secret"),
    ],
)
def test_a_drifted_checkpoint_or_webhook_answer_fails_naming_its_requirement(
    name: str, why: str, orch_serve: ServeFactory, tmp_path: Path
) -> None:
    """A second decision must be refused (ORCH-0370); a subscription's secret must never be
    in a response (ORCH-0404): an extra key fails the pact's key rule, not only a changed one."""
    wrap, interaction, req = MUTANTS[name]
    spec = by_description()[interaction]
    outcome = verify_interaction(spec, PACT, tmp_path, orch_serve(wrap_app=wrap).url)
    assert not outcome.ok, f"{req}: {name} passed the pact"
    assert req in outcome.message and why in outcome.message, outcome.message


def test_the_unmodified_server_honours_the_checkpoint_and_webhook_interactions(
    orch_serve: ServeFactory, tmp_path: Path
) -> None:
    """The control of the test above: the same interactions pass on orchestratord."""
    target = orch_serve()
    for description in ("decide a checkpoint decided before", "get a webhook subscription"):
        outcome = verify_interaction(by_description()[description], PACT, tmp_path, target.url)
        assert outcome.ok, outcome.message
