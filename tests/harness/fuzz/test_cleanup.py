"""A fuzz run leaves no webhook subscription on its target: their deliveries to made-up URLs
would load the target for every later test (and starve real receivers of a shared one)."""

from __future__ import annotations

import httpx

from harness.fuzz.runner import FuzzClient, fuzz_operation, load_contract
from harness.plugin.target import Target


def test_a_fuzz_run_deletes_the_webhook_subscriptions_it_created(orch_target: Target) -> None:
    client = FuzzClient(orch_target.url, headers=orch_target.auth_headers())
    fuzz_operation(load_contract(), "createWebhook", client, examples=10, explore=False)
    created = list(client.created_webhooks)
    assert created, "the fuzz run created no subscription: this test checks nothing"
    client.close()
    listed = httpx.get(
        f"{orch_target.url}/v1/webhooks", params={"limit": 100}, headers=orch_target.auth_headers()
    ).json()["webhooks"]
    left = {str(webhook["webhook_id"]) for webhook in listed} & set(created)
    assert not left, f"the fuzz run left {len(left)} of its {len(created)} subscriptions"
