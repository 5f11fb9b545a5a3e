"""orchestratord with one rule of webhooks (spec section 12.9) broken: the checks must catch each.

Each mutation patches orchestratord's own webhook code for the whole process (an
inner conformance run starts its servers in it). The restart mutant is a serve
command, with the other restart mutants (``tests.harness.restart.mutants``).
Each breaks one rule and nothing else, so the check that catches it must fail
naming that rule's ID.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

import orchestrator.runtime.webhooks
from orchestrator.runtime.webhooks import Webhooks
from orchestrator.store.webhooks import DeliveryRow, Outgoing
from orchestrator.webhooks import SIGNATURE_HEADER
from tests.harness.mutantkit import App, Receive, Scope, Send, mutate_every_server, respond

_signed_headers = orchestrator.runtime.webhooks.signed_headers


def unsigned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries carry no signature header (ORCH-0410)."""

    def headers(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        made = _signed_headers(secret, delivery_id, timestamp, body)
        del made[SIGNATURE_HEADER]
        return made

    monkeypatch.setattr(orchestrator.runtime.webhooks, "signed_headers", headers)


def timestamp_not_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signature covers the body alone: a captured request replays with any timestamp
    (ORCH-0410)."""

    def headers(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        made = _signed_headers(secret, delivery_id, timestamp, body)
        made[SIGNATURE_HEADER] = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return made

    monkeypatch.setattr(orchestrator.runtime.webhooks, "signed_headers", headers)


def new_id_per_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt of a delivery carries an id of its own (ORCH-0411)."""
    original = Webhooks._attempt

    async def attempt(self: Webhooks, out: Outgoing) -> tuple[int | None, str | None]:
        renamed = f"{out.delivery.delivery_id}-{out.delivery.attempts + 1}"
        delivery = dataclasses.replace(out.delivery, delivery_id=renamed)
        return await original(self, dataclasses.replace(out, delivery=delivery))

    monkeypatch.setattr(Webhooks, "_attempt", attempt)


def never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery whose first attempt fails is failed at once (ORCH-0414)."""
    original = Webhooks._record

    def record(self: Webhooks, delivery: DeliveryRow, status: int | None, error: Any) -> None:
        if error is not None:
            delivery = dataclasses.replace(delivery, attempts=1_000_000)
        original(self, delivery, status, error)

    monkeypatch.setattr(Webhooks, "_record", record)


def refused_but_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subscription without events is answered 400, yet stored for every event (ORCH-0401)."""

    def wrap(app: App) -> App:
        async def mutant(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (scope["method"], scope["path"]) != (
                "POST",
                "/v1/webhooks",
            ):
                await app(scope, receive, send)
                return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if not (isinstance(document, dict) and document.get("events") == []):
                replayed = iter([{"type": "http.request", "body": body, "more_body": False}])
                await app(scope, lambda: _next(replayed), send)
                return
            stored = json.dumps({**document, "events": ["*"]}).encode()
            sent = iter([{"type": "http.request", "body": stored, "more_body": False}])

            async def discard(message: dict[str, Any]) -> None:
                return None

            await app(scope, lambda: _next(sent), discard)
            error = {"kind": "INVALID_PARAMS", "message": "events: must not be empty"}
            envelope = {"error": {**error, "retriable": False, "request_id": "r"}}
            headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r")]
            await respond(send, 400, headers, json.dumps(envelope).encode())

        return mutant

    mutate_every_server(monkeypatch, wrap_app=wrap)


async def _next(messages: Any) -> Any:
    return next(messages)


MUTANTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str, str]] = {
    "an unsigned webhook delivery": (unsigned, "delivered_once_signed", "ORCH-0410"),
    "a webhook signature that does not cover the timestamp": (
        timestamp_not_signed,
        "delivered_once_signed",
        "ORCH-0410",
    ),
    "a webhook delivery id that changes on retry": (
        new_id_per_attempt,
        "retried_under_its_id",
        "ORCH-0411",
    ),
    "a failed webhook delivery never retried": (
        never_retried,
        "retried_under_its_id",
        "ORCH-0414",
    ),
    "a refused webhook subscription stored all the same": (
        refused_but_stored,
        "broken_subscription_is_refused",
        "ORCH-0401",
    ),
}
"""name -> (the mutation, the ``-k`` of the check of ``test_contract_webhooks``, the rule)."""


RESTART_SELECTION = "survives_a_restart"
"""The ``-k`` of the check that catches ``restart.mutants.WEBHOOK_MUTANTS``."""
