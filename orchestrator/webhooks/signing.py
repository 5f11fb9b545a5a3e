"""A delivery's bytes and signature (ORCH-0409, ORCH-0410).

The body is compact JSON built once per delivery; the signature covers the
attempt's timestamp and those exact bytes, so each attempt is signed afresh
(ORCH-0412) while the body, and the delivery id in it, stay the same.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

ID_HEADER = "Orch-Webhook-Id"
TIMESTAMP_HEADER = "Orch-Webhook-Timestamp"
SIGNATURE_HEADER = "Orch-Webhook-Signature"
SIGNATURE_VERSION = "v1"


def delivery_body(delivery_id: str, event: str, run_id: str, event_id: int, data: Any) -> bytes:
    """The JSON body of every attempt of a delivery."""
    document = {
        "delivery_id": delivery_id,
        "event": event,
        "run_id": run_id,
        "event_id": event_id,
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the lowercase hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt sent at ``timestamp`` (Unix seconds)."""
    return {
        "Content-Type": "application/json",
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
