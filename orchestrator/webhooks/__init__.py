"""Webhooks of runs (spec section 12.9), the parts that need no event loop or store.

:mod:`.signing` builds a delivery's body and headers; :mod:`.subscriptions`
validates a subscription. The delivery loop is
:mod:`orchestrator.runtime.webhooks`, its rows :mod:`orchestrator.store.webhooks`.
"""

from orchestrator.webhooks.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    delivery_body,
    signature,
    signed_headers,
)
from orchestrator.webhooks.subscriptions import (
    ALL_EVENTS,
    MAX_SECRET_CHARS,
    MAX_URL_CHARS,
    MIN_SECRET_CHARS,
    URL_PATTERN,
    selects,
)

__all__ = [
    "ALL_EVENTS",
    "ID_HEADER",
    "MAX_SECRET_CHARS",
    "MAX_URL_CHARS",
    "MIN_SECRET_CHARS",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "URL_PATTERN",
    "delivery_body",
    "selects",
    "signature",
    "signed_headers",
]
