"""Receiving OrchQueue webhooks (spec section 12.9): verify a delivery, or run a receiver.

:func:`verify` is the receiver rules of ORCH-0417 and ORCH-0418 as one call, for
users' own receivers and their tests; :class:`Receiver` is a real HTTP receiver
on loopback that verifies, records and misbehaves on demand (the
``orch_webhook_receiver`` fixture).
"""

from harness.webhooks.receiver import Received, Receiver
from harness.webhooks.verify import (
    DEFAULT_TOLERANCE_S,
    WebhookVerificationError,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "Received",
    "Receiver",
    "WebhookVerificationError",
    "verify",
]
