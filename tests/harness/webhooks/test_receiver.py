"""Self-tests of ``harness.webhooks``: the verify function and the receiver fixture.

A receiver that accepts everything would let every signing bug through; these
send it real HTTP requests that are well signed, badly signed, stale, replayed
or reusing an id, and check each verdict and the rule it names.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from harness.webhooks import Receiver, WebhookVerificationError, verify
from orchestrator.webhooks import delivery_body, signed_headers

SPEC_SECRET = "whsec_0123456789abcdef"
SPEC_TIMESTAMP = 1767225600
SPEC_BODY = (
    b'{"delivery_id":"dlv_1","event":"run.completed","run_id":"run_1","event_id":7,'
    b'"data":{"run_id":"run_1"}}'
)
SPEC_SIGNATURE = "v1=ecde7bc14033df805086e817d295ff5f69242d864e9979d67cc831a3cc763cff"
"""The example of spec section 12.9, byte for byte."""


def _spec_headers(signature: str = SPEC_SIGNATURE) -> dict[str, str]:
    return {
        "Orch-Webhook-Id": "dlv_1",
        "Orch-Webhook-Timestamp": str(SPEC_TIMESTAMP),
        "Orch-Webhook-Signature": signature,
    }


def _send(receiver: Receiver, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST a delivery; returns once the receiver has recorded it (it records after answering)."""
    before = len(receiver.records())
    response = httpx.post(
        receiver.url, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert receiver.wait_until(lambda records: len(records) > before, timeout=5)
    return response


def _delivery(
    receiver: Receiver, event_id: int = 1, **overrides: object
) -> tuple[bytes, dict[str, str]]:
    body = delivery_body("dlv_x", "run.started", "run_1", event_id, {"run_id": "run_1"})
    headers = signed_headers(receiver.secret, "dlv_x", int(time.time()), body)
    headers.update({k: str(v) for k, v in overrides.items()})
    return body, headers


@pytest.mark.req("ORCH-0410", "ORCH-0417")
def test_verify_accepts_the_spec_example_and_refuses_it_changed() -> None:
    document = verify(SPEC_SECRET, _spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP + 10)
    assert document["event_id"] == 7
    with pytest.raises(WebhookVerificationError, match=r"^ORCH-0410: Orch-Webhook-Signature"):
        verify(SPEC_SECRET, _spec_headers(), SPEC_BODY.replace(b"7", b"8"), now=SPEC_TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match=r"^ORCH-0410"):
        verify("another-secret-0123", _spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)
    moved = {**_spec_headers(), "Orch-Webhook-Timestamp": str(SPEC_TIMESTAMP + 1)}
    with pytest.raises(WebhookVerificationError, match=r"^ORCH-0410"):
        verify(SPEC_SECRET, moved, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.req("ORCH-0410")
def test_orchestratord_signs_the_spec_example_byte_for_byte() -> None:
    body = delivery_body("dlv_1", "run.completed", "run_1", 7, {"run_id": "run_1"})
    assert body == SPEC_BODY
    headers = signed_headers(SPEC_SECRET, "dlv_1", SPEC_TIMESTAMP, body)
    assert headers["Orch-Webhook-Signature"] == SPEC_SIGNATURE
    assert headers["Orch-Webhook-Timestamp"] == "1767225600"


@pytest.mark.req("ORCH-0418")
def test_verify_refuses_a_timestamp_more_than_300_seconds_away() -> None:
    verify(SPEC_SECRET, _spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP + 300)
    verify(SPEC_SECRET, _spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP - 300)
    for now in (SPEC_TIMESTAMP + 301, SPEC_TIMESTAMP - 301):
        with pytest.raises(WebhookVerificationError, match=r"^ORCH-0418"):
            verify(SPEC_SECRET, _spec_headers(), SPEC_BODY, now=now)


def test_verify_names_a_missing_header_and_a_malformed_timestamp() -> None:
    for missing in ("Orch-Webhook-Signature", "Orch-Webhook-Timestamp", "Orch-Webhook-Id"):
        headers = {k: v for k, v in _spec_headers().items() if k != missing}
        with pytest.raises(WebhookVerificationError, match=rf"^ORCH-0410: .*{missing}"):
            verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)
    for stamp in ("-5", "1e9", "\uff11\uff12"):
        headers = {**_spec_headers(), "Orch-Webhook-Timestamp": stamp}
        with pytest.raises(WebhookVerificationError, match=r"^ORCH-0410"):
            verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.req("ORCH-0417")
def test_the_receiver_records_a_bad_signature_as_rejected(
    orch_webhook_receiver: Receiver,
) -> None:
    body, headers = _delivery(orch_webhook_receiver, **{"Orch-Webhook-Signature": "v1=00"})
    assert _send(orch_webhook_receiver, body, headers).status_code == 401
    (record,) = orch_webhook_receiver.records()
    assert record.verdict == "rejected"
    assert str(record.reason).startswith("ORCH-0410: Orch-Webhook-Signature")
    assert orch_webhook_receiver.accepted() == []
    with pytest.raises(AssertionError, match=r"^ORCH-0410"):
        orch_webhook_receiver.assert_all_verified()
    with pytest.raises(AssertionError, match=r"^ORCH-0410"):
        orch_webhook_receiver.wait_for("run.started", "run_1", timeout=0.1)


@pytest.mark.req("ORCH-0418")
def test_the_receiver_rejects_a_stale_timestamp(orch_webhook_receiver: Receiver) -> None:
    body = delivery_body("dlv_old", "run.started", "run_1", 1, {})
    stale = int(time.time()) - 301
    headers = signed_headers(orch_webhook_receiver.secret, "dlv_old", stale, body)
    assert _send(orch_webhook_receiver, body, headers).status_code == 401
    (record,) = orch_webhook_receiver.records()
    assert record.verdict == "rejected" and str(record.reason).startswith("ORCH-0418")


@pytest.mark.req("ORCH-0419", "ORCH-0411")
def test_the_receiver_processes_a_delivery_id_once(orch_webhook_receiver: Receiver) -> None:
    body, headers = _delivery(orch_webhook_receiver)
    assert _send(orch_webhook_receiver, body, headers).status_code == 200
    assert _send(orch_webhook_receiver, body, headers).status_code == 200  # the replay
    verdicts = [r.verdict for r in orch_webhook_receiver.records()]
    assert verdicts == ["accepted", "replay"]
    assert len(orch_webhook_receiver.accepted()) == 1
    orch_webhook_receiver.assert_all_verified()  # a repeat is what at-least-once allows
    reused, reused_headers = _delivery(orch_webhook_receiver, event_id=2)
    assert _send(orch_webhook_receiver, reused, reused_headers).status_code == 409
    assert orch_webhook_receiver.records()[-1].verdict == "rejected"
    with pytest.raises(AssertionError, match=r"^ORCH-0411"):
        orch_webhook_receiver.assert_all_verified()


def test_the_receiver_fails_and_delays_on_demand_without_marking_the_id_seen(
    orch_webhook_receiver: Receiver,
) -> None:
    orch_webhook_receiver.fail_next(1, status=502)
    orch_webhook_receiver.delay_next(1, seconds=0.3)
    body, headers = _delivery(orch_webhook_receiver)
    assert _send(orch_webhook_receiver, body, headers).status_code == 502
    started = time.monotonic()
    assert _send(orch_webhook_receiver, body, headers).status_code == 503
    assert time.monotonic() - started >= 0.3
    assert _send(orch_webhook_receiver, body, headers).status_code == 200
    assert [r.verdict for r in orch_webhook_receiver.attempts("dlv_x")] == [
        "failed",
        "failed",
        "accepted",
    ]
    assert orch_webhook_receiver.wait_for("run.started", "run_1", timeout=0.1).status == 200


def test_wait_for_names_the_given_requirement_when_nothing_arrives(
    orch_webhook_receiver: Receiver,
) -> None:
    with pytest.raises(AssertionError, match=r"^ORCH-0416: no verified delivery of run.failed"):
        orch_webhook_receiver.wait_for("run.failed", "r", timeout=0.05, requirement="ORCH-0416")


def test_stop_waits_for_a_request_still_being_answered() -> None:
    """A sender that gave up leaves no request thread behind once the receiver stopped."""
    receiver = Receiver().start()
    receiver.delay_next(1, seconds=2.0)
    body, headers = _delivery(receiver)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(receiver.url, content=body, headers=headers, timeout=0.1)
    receiver.stop()
    alive = [t.name for t in threading.enumerate() if "process_request_thread" in t.name]
    assert alive == [], f"request threads outlived the receiver: {alive}"
    assert [r.verdict for r in receiver.records()] == ["failed"]
