"""A webhook receiver's check of a delivery, with harness.webhooks.verify (spec section 12.9).

``handle`` is what a receiver's POST handler does with the request's headers and raw
body: verify the signature and the timestamp, then process each delivery id once.
Run as a script, it checks the spec's example delivery (at the spec's time) and a
replay of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.webhooks import WebhookVerificationError, verify

SECRET = "whsec_0123456789abcdef"
seen: set[str] = set()  # a real receiver keeps this in its database


def handle(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> int:
    """The status to answer: 401 for a delivery to refuse, 200 otherwise."""
    try:
        delivery = verify(SECRET, headers, body, now=now)
    except WebhookVerificationError as exc:
        print(f"refused: {exc}")
        return 401
    if delivery["delivery_id"] in seen:
        print(f"already processed {delivery['delivery_id']}")
        return 200  # so the server stops sending it
    seen.add(delivery["delivery_id"])
    print(f"processing {delivery['event']} #{delivery['event_id']} of {delivery['run_id']}")
    return 200


if __name__ == "__main__":
    body = (
        b'{"delivery_id":"dlv_1","event":"run.completed","run_id":"run_1","event_id":7,'
        b'"data":{"run_id":"run_1"}}'
    )
    headers = {
        "Orch-Webhook-Id": "dlv_1",
        "Orch-Webhook-Timestamp": "1767225600",
        "Orch-Webhook-Signature": (
            "v1=ecde7bc14033df805086e817d295ff5f69242d864e9979d67cc831a3cc763cff"
        ),
    }
    handle(headers, body, now=1767225600)
    handle(headers, body, now=1767225600)
    handle(headers, body)  # today: the timestamp is too old
    handle({**headers, "Orch-Webhook-Timestamp": "1767225601"}, body, now=1767225600)
