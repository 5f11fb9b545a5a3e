"""Verify one webhook delivery as a receiver must (ORCH-0410, ORCH-0417, ORCH-0418).

Stateless: it checks the signature against the raw body and the timestamp
against the clock, and returns the decoded body. Refusing a delivery id seen
before (ORCH-0419) needs the receiver's memory; :class:`harness.webhooks.Receiver`
keeps one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

DEFAULT_TOLERANCE_S = 300
"""How far a delivery's timestamp may be from the receiver's clock (ORCH-0418)."""

ID_HEADER = "Orch-Webhook-Id"
TIMESTAMP_HEADER = "Orch-Webhook-Timestamp"
SIGNATURE_HEADER = "Orch-Webhook-Signature"


class WebhookVerificationError(Exception):
    """A delivery a receiver must refuse; the message starts with the requirement it breaks."""

    def __init__(self, requirement: str, reason: str) -> None:
        super().__init__(f"{requirement}: {reason}")
        self.requirement = requirement
        self.reason = reason


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise WebhookVerificationError("ORCH-0410", f"the delivery has no {name} header")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> dict[str, Any]:
    """The delivery's decoded body, once its signature and timestamp check out.

    ``headers`` are the request's (any case), ``body`` its raw bytes, exactly as
    received: re-encoding the JSON changes them and breaks the signature.
    ``now`` (Unix seconds) defaults to the clock. Raises
    :class:`WebhookVerificationError` naming the broken requirement otherwise.
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    if not stamp.isascii() or not stamp.isdigit():
        raise WebhookVerificationError(
            "ORCH-0410", f"{TIMESTAMP_HEADER} is not Unix seconds in ASCII digits: {stamp!r}"
        )
    signed = stamp.encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
        raise WebhookVerificationError(
            "ORCH-0410",
            f"{SIGNATURE_HEADER} is not v1=HMAC-SHA256(secret, timestamp + '.' + body), "
            "so a receiver refuses it (ORCH-0417)",
        )
    clock = time.time() if now is None else now
    if abs(clock - int(stamp)) > tolerance_s:
        raise WebhookVerificationError(
            "ORCH-0418",
            f"{TIMESTAMP_HEADER} {stamp} is {abs(clock - int(stamp)):.0f} s from now "
            f"(at most {tolerance_s:g} s)",
        )
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError("ORCH-0409", f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise WebhookVerificationError("ORCH-0409", "the body is not a JSON object")
    delivery_id = _header(headers, ID_HEADER)
    if document.get("delivery_id") != delivery_id:
        raise WebhookVerificationError(
            "ORCH-0410",
            f"{ID_HEADER} {delivery_id!r} is not the body's delivery_id "
            f"{document.get('delivery_id')!r}",
        )
    return document
