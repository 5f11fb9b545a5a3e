"""The pact served by the Pact stub server: our typed client's flows work against it.

Every consumer exercise of ``test_consumer.py`` (session, admission, stream,
every error kind) runs again, now against ``pact stub`` serving the committed
pact file, on a stub that serves the exercise's provider states. A consumer's
whole journey runs on one stub, choosing interactions with the provider-state
header; ``orchq pact stub`` prints its URL first and stops its server with it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.pact.interactions import INTERACTIONS
from harness.pact.model import PACT_FILE, Interaction
from harness.pact.plugin import committed_pact_dir
from harness.pact.stub import STATE_HEADER, StubServer
from orchestrator.client import OrchClient, OrchProtocolError
from tests.harness.pact.test_consumer import EXERCISES

pytestmark = pytest.mark.contract

PACT = committed_pact_dir() / PACT_FILE


def _groups() -> dict[tuple[str, ...], list[Interaction]]:
    groups: dict[tuple[str, ...], list[Interaction]] = {}
    for interaction in INTERACTIONS:
        groups.setdefault(interaction.states, []).append(interaction)
    return groups


def _stub(states: tuple[str, ...]) -> StubServer:
    """A stub serving the interactions of exactly these states (none: only stateless ones)."""
    if not states:
        return StubServer(PACT, state="^$", stateless=True)
    wanted = "^(?:" + "|".join(re.escape(state) for state in states) + ")$"
    return StubServer(PACT, state=wanted, stateless=False)


@pytest.mark.parametrize(
    "states", list(_groups()), ids=lambda states: " + ".join(states) or "no provider state"
)
def test_the_consumer_flows_run_against_the_stub(states: tuple[str, ...]) -> None:
    with _stub(states) as stub:
        for interaction in _groups()[states]:
            try:
                EXERCISES[interaction.description](stub.url)
            except AssertionError as exc:
                raise AssertionError(
                    f"{interaction.description!r} against the stub: {exc}"
                ) from exc


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(PACT) as server:
        yield server


def _client(stub: StubServer, state: str) -> OrchClient:
    return OrchClient(stub.url, headers={STATE_HEADER: state})


def test_a_consumer_journey_on_one_stub(stub: StubServer) -> None:
    with _client(stub, "a session exists") as client:
        admitted = client.submit_task("sess_1", "hello", max_tokens=2, seed=7, determinism="strict")
    assert (admitted.state, admitted.seed) == ("queued", 7)
    with _client(stub, "a completed task exists") as client:
        task = client.get_task(admitted.task_id)
        stream = client.collect_stream(admitted.task_id, reconnect=False)
    assert (task.state, stream.texts) == ("completed", [" mursha", " zori"])
    for kind in ("WORKER_RESET", "REPLICA_EXHAUSTED", "DECODE_TIMEOUT", "INTERNAL"):
        with _client(stub, f"a task failed with {kind}") as client:
            failed = client.get_task("task_1")
            closed = client.collect_stream("task_1", reconnect=False)
        assert failed.error is not None and failed.error.kind == kind
        assert closed.error is not None and closed.error.kind == kind


def test_a_request_the_pact_does_not_describe_is_not_answered(stub: StubServer) -> None:
    response = httpx.get(f"{stub.url}/v1/admin/routing")
    assert response.status_code == 404
    assert response.content == b""


def test_orchq_pact_stub_prints_its_url_and_stops_its_server() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "pact", "stub", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)$", first.strip())
        assert found, first
        assert httpx.get(f"{found.group(1)}/healthz").json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=10)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{found.group(1)}/healthz")


def test_orchq_pact_stub_refuses_an_unreadable_pact() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "pact", "stub", "--pact", "/nonexistent.json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("orchq pact: /nonexistent.json: cannot read the pact")


def test_the_stub_serves_the_file_as_it_is(tmp_path: Path) -> None:
    """A pact whose task lost its ``attempts`` fails the client's flow against the stub:
    the stub answers what the file says, nothing more (so a broken pact cannot hide)."""
    from harness.pact.pactfiles import dumps, load

    data = load(PACT)
    for interaction in data["interactions"]:
        if interaction["description"] == "get a completed task":
            del interaction["response"]["body"]["content"]["attempts"]
    broken = tmp_path / PACT_FILE
    broken.write_text(dumps(data), encoding="utf-8")
    stub = StubServer(broken, state="^a completed task exists$", stateless=False)
    with stub, pytest.raises(OrchProtocolError, match="attempts"):
        EXERCISES["get a completed task"](stub.url)
