"""Self-tests of the consumer side: a client that drifts from the recorded pact fails.

The interaction table is what both sides agree on; these tests change one
side of one interaction and show the consumer test run cannot pass then.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.pact.interactions import by_description
from orchestrator.client import OrchClient, OrchProtocolError
from tests.harness.pact.test_consumer import EXERCISES, record

pytestmark = pytest.mark.contract


def test_a_request_the_pact_does_not_expect_fails(tmp_path: Path) -> None:
    """The client sends ``max_tokens: 2``; a pact expecting 3 must refuse it."""
    from pact.error import MismatchesError

    interaction = by_description()["submit a strict task with a seed"]
    body = dict(interaction.request_body)
    body["max_tokens"] = 3
    drifted = dataclasses.replace(interaction, request_body=body)
    with pytest.raises(MismatchesError):
        record(drifted, EXERCISES[interaction.description], tmp_path)
    assert not list(tmp_path.glob("*.json")), "a failed consumer test must not write its pact"


def test_an_uncalled_interaction_fails(tmp_path: Path) -> None:
    from pact.error import MismatchesError

    interaction = by_description()["check health"]
    with pytest.raises(MismatchesError):
        record(interaction, lambda url: None, tmp_path)


def test_an_answer_the_client_cannot_decode_is_a_protocol_error(tmp_path: Path) -> None:
    """A 202 without ``stream_url`` (ORCH-0042) is refused by the client, not passed on."""
    interaction = by_description()["submit a strict task with a seed"]
    body = {k: v for k, v in interaction.response_body.items() if k != "stream_url"}
    drifted = dataclasses.replace(interaction, response_body=body)

    def submit(url: str) -> None:
        with OrchClient(url) as client, pytest.raises(OrchProtocolError, match="stream_url"):
            client.submit_task("sess_1", "hello", max_tokens=2, seed=7, determinism="strict")

    record(drifted, submit, tmp_path)
