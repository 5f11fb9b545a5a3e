"""orchestratord's webhook outbox and its client calls, read back from the database.

Spec: ORCH-0406 (a delivery per selected event, in the event's transaction),
ORCH-0405 (deleting a subscription removes its deliveries), ORCH-0343 (purging
a run removes what references it).
"""

from __future__ import annotations

import sqlite3

import pytest

from harness.webhooks import Receiver
from orchestrator.client import OrchClient, OrchError
from tests.support import ConfigFactory, ServeFactory, wait_until

UNREACHABLE = "http://127.0.0.1:9/hooks"
"""Nothing listens on the discard port: every attempt fails, deliveries stay pending."""


def _run(client: OrchClient, steps: int = 2) -> str:
    chain = [{"id": "s0", "prompt": "p", "max_tokens": 2}] + [
        {"id": f"s{i}", "prompt": "p", "max_tokens": 2, "depends_on": [f"s{i - 1}"]}
        for i in range(1, steps)
    ]
    client.register_definition({"name": "hooked", "version": "1", "steps": chain})
    session = client.create_session().session_id
    run_id = client.create_run(session, "hooked", "1").run_id
    wait_until(lambda: client.get_run(run_id).state != "running", timeout=20)
    return run_id


@pytest.mark.req("ORCH-0406")
def test_every_selected_event_has_its_delivery_in_the_database(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    hooks = [
        {"url": UNREACHABLE, "events": ["*"], "secret": "s" * 16},
        {"url": UNREACHABLE, "events": ["run.completed"], "secret": "t" * 16},
    ]
    server = serve(make_config(webhooks=hooks, webhook_backoff_base_ms=60_000))
    with OrchClient(server.url) as client:
        run_id = _run(client)
        with sqlite3.connect(db_path) as db:
            events = db.execute(
                "SELECT seq, event FROM run_events WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            deliveries = db.execute(
                "SELECT w.events, d.event_id, d.state FROM webhook_deliveries d "
                "JOIN webhooks w USING (webhook_id) WHERE d.run_id = ? ORDER BY d.seq",
                (run_id,),
            ).fetchall()
        every = [event_id for (kind, event_id, _) in deliveries if kind == '["*"]']
        assert every == [seq for seq, _ in events]
        completed = [event_id for (kind, event_id, _) in deliveries if kind != '["*"]']
        assert completed == [seq for seq, event in events if event == "run.completed"]
        assert {state for (_, _, state) in deliveries} == {"pending"}
        every_id = client.list_webhooks().webhooks[0].webhook_id

        def first_attempt_failed() -> bool:
            first = client.list_deliveries(every_id, limit=1).deliveries[0]
            return first.attempts >= 1 and first.last_error is not None

        wait_until(first_attempt_failed)


@pytest.mark.req("ORCH-0402", "ORCH-0403", "ORCH-0405", "ORCH-0407")
def test_the_client_manages_subscriptions_and_reads_the_log(
    serve: ServeFactory, make_config: ConfigFactory, db_path: str
) -> None:
    server = serve(make_config())
    with Receiver() as receiver, OrchClient(server.url) as client:
        made = client.create_webhook(receiver.url, ["run.started"], receiver.secret)
        assert client.get_webhook(made.webhook_id) == made
        assert client.list_webhooks().webhooks == [made]
        run_id = _run(client)
        receiver.wait_for("run.started", run_id)
        wait_until(
            lambda: bool(client.list_deliveries(made.webhook_id, state="delivered").deliveries)
        )
        page = client.list_deliveries(made.webhook_id, run_id=run_id, limit=1)
        assert [d.event for d in page.deliveries] == ["run.started"]
        assert page.next_cursor is None
        client.delete_webhook(made.webhook_id)
        with pytest.raises(OrchError) as gone:
            client.get_webhook(made.webhook_id)
        assert gone.value.status == 404
    with sqlite3.connect(db_path) as db:
        left = db.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0]
    assert left == 0
