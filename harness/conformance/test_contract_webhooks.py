"""Webhooks of runs (spec section 12.9): subscriptions, signed deliveries, retries, the log.

What a subscriber can observe, through a real receiver (``orch_webhook_receiver``)
that verifies every request as ORCH-0417 and ORCH-0418 ask: the subscription API
and its refusals; one signed delivery per selected run event, its body the
event; a failed attempt retried under the same id with a fresh signature; a
lane delivered strictly in order; the delivery log; a delivery that fails for
good; a pending delivery that survives a restart. Checks that need a
configuration of their own (a short timeout, a few attempts) start a target of
their own and skip against ``--orch-url``, never pass; the rest run against
any target that can reach the receiver (``--orch-webhook-bind``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.checks import expect, orch_check
from harness.engine.control import unique_tag
from harness.plugin.target import ServeFactory, Target
from harness.webhooks import Received, Receiver, WebhookVerificationError, verify
from harness.wire import Wire, expect_error
from harness.wire.runs import definition, read_run_events, register, start_run, step, wait_run

pytestmark = [pytest.mark.contract, pytest.mark.orch_profile("runs")]

WEBHOOK_FIELDS = {"webhook_id", "url", "events", "source", "created_at"}
DELIVERY_FIELDS = {
    "delivery_id",
    "event",
    "run_id",
    "event_id",
    "state",
    "attempts",
    "last_status",
    "last_error",
    "created_at",
    "delivered_at",
}
BODY_FIELDS = {"delivery_id", "event", "run_id", "event_id", "data"}
FAST_RETRIES = {
    "webhook_backoff_base_ms": 50,
    "webhook_backoff_cap_ms": 100,
    "webhook_max_attempts": 3,
}
"""A target of its own that retries quickly and gives up after three attempts."""

Subscribe = Callable[..., dict[str, Any]]


def _name(what: str) -> str:
    return unique_tag(what)[1:-1].replace(" ", "-")


def _subscription(receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    return {"url": receiver.url, "events": events or ["*"], "secret": receiver.secret}


def _subscribe_on(
    wire: Wire, receiver: Receiver, events: list[str] | None = None
) -> dict[str, Any]:
    response = wire.post_json("/v1/webhooks", _subscription(receiver, events))
    expect(
        response.status_code == 201,
        f"ORCH-0402: POST /v1/webhooks of a valid subscription must answer 201; got "
        f"{response.status_code}: {response.text[:300]}",
    )
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def subscribe(wire: Wire, orch_webhook_receiver: Receiver) -> Iterator[Subscribe]:
    """``subscribe(events=None, wire=None)``: the receiver subscribed; deleted at teardown."""
    made: list[tuple[Wire, str]] = []

    def make(events: list[str] | None = None, on: Wire | None = None) -> dict[str, Any]:
        target = on or wire
        created = _subscribe_on(target, orch_webhook_receiver, events)
        made.append((target, str(created["webhook_id"])))
        return created

    yield make
    for target, webhook_id in made:
        target.http.delete(f"/v1/webhooks/{webhook_id}")


def _run_to_end(wire: Wire, steps: int = 2) -> dict[str, Any]:
    """A finished run of a definition of ``steps`` chained steps."""
    name = _name("hooked")
    chain = [step("s0")] + [step(f"s{i}", depends_on=[f"s{i - 1}"]) for i in range(1, steps)]
    register(wire, definition(name, chain))
    run = start_run(wire, name)
    return wait_run(wire, str(run["run_id"]))


def _log(wire: Wire, webhook_id: str, **query: Any) -> dict[str, Any]:
    response = wire.http.get(f"/v1/webhooks/{webhook_id}/deliveries", params=query)
    expect(
        response.status_code == 200,
        f"ORCH-0407: GET /v1/webhooks/{webhook_id}/deliveries must answer 200; got "
        f"{response.status_code}: {response.text[:300]}",
    )
    log: dict[str, Any] = response.json()
    return log


def _wait_log(
    wire: Wire, webhook_id: str, done: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        deliveries: list[dict[str, Any]] = _log(wire, webhook_id, limit=100)["deliveries"]
        if done(deliveries):
            return deliveries
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; the log holds {deliveries}")
        time.sleep(0.05)


# ---------------------------------------------------------------- the subscription API


@pytest.mark.req("ORCH-0400", "ORCH-0402", "ORCH-0403", "ORCH-0404", "ORCH-0405")
def test_a_subscription_is_created_read_listed_and_deleted(
    wire: Wire, orch_webhook_receiver: Receiver
) -> None:
    document = _subscription(orch_webhook_receiver, ["run.completed", "step.failed"])
    response = wire.post_json("/v1/webhooks", document)
    secret = orch_webhook_receiver.secret
    with orch_check("ORCH-0402"):
        expect(
            response.status_code == 201,
            f"ORCH-0402: a valid subscription must answer 201; got {response.status_code}: "
            f"{response.text[:300]}",
        )
        body = response.json()
        expect(
            set(body) == WEBHOOK_FIELDS,
            f"ORCH-0403: a subscription must hold exactly {sorted(WEBHOOK_FIELDS)}; got {body}",
            "ORCH-0403",
        )
        location = f"/v1/webhooks/{body['webhook_id']}"
        expect(
            response.headers.get("location") == location,
            f"ORCH-0402: Location must be {location}; got {response.headers.get('location')}",
        )
        expect(
            body["url"] == document["url"]
            and body["events"] == document["events"]
            and body["source"] == "api",
            f"ORCH-0403: the subscription must show its url, events and source 'api'; got {body}",
            "ORCH-0403",
        )
    with orch_check("ORCH-0403", "ORCH-0404"):
        read = wire.http.get(location)
        expect(
            read.status_code == 200 and read.json() == body,
            f"ORCH-0403: GET {location} must answer the subscription; got {read.status_code}: "
            f"{read.text[:300]}",
        )
        listed = wire.http.get("/v1/webhooks")
        expect(listed.status_code == 200, f"ORCH-0403: GET /v1/webhooks: {listed.status_code}")
        every = listed.json()["webhooks"]
        expect(body in every, f"ORCH-0403: the listing must hold the subscription; got {every}")
        keys = [(w["created_at"], w["webhook_id"]) for w in every]
        expect(keys == sorted(keys), f"ORCH-0403: listed by created_at, webhook_id; got {keys}")
        for answer in (response, read, listed):
            expect(
                secret not in answer.text,
                f"ORCH-0404: the secret must never be sent back; {answer.request.method} "
                f"{answer.request.url.path} shows it",
                "ORCH-0404",
            )
    with orch_check("ORCH-0405"):
        gone = wire.http.delete(location)
        expect(
            gone.status_code == 204,
            f"ORCH-0405: DELETE {location} must answer 204; got {gone.status_code}",
        )
        expect_error(wire.http.get(location), 404, "NOT_FOUND", "ORCH-0403", "a deleted webhook")
        expect_error(wire.http.delete(location), 404, "NOT_FOUND", "ORCH-0405", "deleted twice")
        expect_error(
            wire.http.get(f"{location}/deliveries"),
            404,
            "NOT_FOUND",
            "ORCH-0407",
            "the log of a deleted webhook",
        )


def _broken(receiver: Receiver) -> list[tuple[str, dict[str, Any], str]]:
    """(what, document, the field the error must start with)."""
    ok = _subscription(receiver)
    return [
        ("an ftp URL", {**ok, "url": "ftp://example.com/hooks"}, "url"),
        ("a URL without a host", {**ok, "url": "http:///hooks"}, "url"),
        ("a relative URL", {**ok, "url": "/hooks"}, "url"),
        ("a URL of 2,049 characters", {**ok, "url": "http://h/" + "a" * 2040}, "url"),
        ("no url", {k: v for k, v in ok.items() if k != "url"}, "url"),
        ("no events", {**ok, "events": []}, "events"),
        ("an unknown event", {**ok, "events": ["run.started", "run.paused"]}, "events"),
        ("'*' with an event", {**ok, "events": ["*", "run.started"]}, "events"),
        ("an event twice", {**ok, "events": ["run.failed", "run.failed"]}, "events"),
        ("events as a text", {**ok, "events": "*"}, "events"),
        ("a 15-character secret", {**ok, "secret": "s" * 15}, "secret"),
        ("a 257-character secret", {**ok, "secret": "s" * 257}, "secret"),
        ("no secret", {k: v for k, v in ok.items() if k != "secret"}, "secret"),
    ]


@pytest.mark.req("ORCH-0400", "ORCH-0401")
def test_a_broken_subscription_is_refused_naming_its_field(
    wire: Wire, orch_webhook_receiver: Receiver
) -> None:
    before = {w["webhook_id"] for w in wire.http.get("/v1/webhooks").json()["webhooks"]}
    broken = list(_broken(orch_webhook_receiver))
    # Other tests may subscribe to a shared target meanwhile: only these URLs are this test's.
    urls = {str(document.get("url")) for _, document, _ in broken}
    for what, document, field in broken:
        with orch_check("ORCH-0401"):
            response = wire.post_json("/v1/webhooks", document)
            expect_error(response, 400, "INVALID_PARAMS", "ORCH-0401", what)
            message = str(response.json()["error"]["message"])
            expect(
                message.startswith(field),
                f"ORCH-0401: the refusal of {what} must start with {field!r}; got {message!r}",
            )
    with orch_check("ORCH-0401"):
        malformed = wire.http.post(
            "/v1/webhooks", content=b'{"url": ', headers={"Content-Type": "application/json"}
        )
        expect_error(malformed, 400, "INVALID_PARAMS", "ORCH-0401", "malformed JSON")
        made = {
            w["webhook_id"]
            for w in wire.http.get("/v1/webhooks").json()["webhooks"]
            if w["webhook_id"] not in before and str(w.get("url")) in urls
        }
        expect(not made, f"ORCH-0401: a refused subscription was made: {made}")


# ---------------------------------------------------------------- deliveries


def _check_signed(record: Received, secret: str) -> None:
    """One attempt as ORCH-0409 and ORCH-0410 say, verified as a receiver must."""
    try:
        verify(secret, record.headers, record.body)
    except WebhookVerificationError as exc:
        raise AssertionError(str(exc)) from None
    expect(
        record.header(
            "Content-Type",
        )
        is not None
        and str(record.header("Content-Type")).startswith("application/json"),
        f"ORCH-0409: a delivery is sent as application/json; got {record.header('Content-Type')}",
        "ORCH-0409",
    )
    expect(
        record.payload is not None and set(record.payload) == BODY_FIELDS,
        f"ORCH-0409: a delivery's body holds exactly {sorted(BODY_FIELDS)}; got "
        f"{record.body[:300]!r}",
        "ORCH-0409",
    )
    expect(
        record.header("Orch-Webhook-Id") == record.delivery_id,
        f"ORCH-0410: Orch-Webhook-Id must be the delivery id; got "
        f"{record.header('Orch-Webhook-Id')} for {record.delivery_id}",
        "ORCH-0410",
    )


@pytest.mark.req("ORCH-0406", "ORCH-0409", "ORCH-0410", "ORCH-0411")
def test_every_run_event_is_delivered_once_signed_with_its_data(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    subscribe(["*"])
    run = _run_to_end(wire)
    run_id = str(run["run_id"])
    closing = f"run.{run['state']}"
    orch_webhook_receiver.wait_for(closing, run_id)
    orch_webhook_receiver.assert_all_verified()
    stream = read_run_events(wire, run_id)
    delivered = orch_webhook_receiver.accepted(run_id)
    with orch_check("ORCH-0409", "ORCH-0410"):
        for record in delivered:
            _check_signed(record, orch_webhook_receiver.secret)
    with orch_check("ORCH-0406", "ORCH-0409"):
        expected = [(int(e.id or 0), e.event, e.data) for e in stream.events]
        got = sorted((int(r.event_id or 0), r.event, r.data) for r in delivered)
        expect(
            got == expected,
            f"ORCH-0406: each run event must be delivered once, its data exactly the "
            f"stream's; the stream had {expected}, the receiver got {got}",
        )
    with orch_check("ORCH-0411"):
        ids = [r.delivery_id for r in delivered]
        expect(len(set(ids)) == len(ids), f"ORCH-0411: every delivery gets an id of its own: {ids}")


@pytest.mark.req("ORCH-0406")
def test_a_subscription_gets_only_the_events_it_names(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    subscribe(["step.succeeded", "run.completed"])
    run = _run_to_end(wire)
    run_id = str(run["run_id"])
    orch_webhook_receiver.wait_for("run.completed", run_id)
    with orch_check("ORCH-0406"):
        events = sorted(str(r.event) for r in orch_webhook_receiver.accepted(run_id))
        expect(
            events == ["run.completed", "step.succeeded", "step.succeeded"],
            f"ORCH-0406: a subscription to step.succeeded and run.completed gets exactly "
            f"those of a two-step run; got {events}",
        )


@pytest.mark.req("ORCH-0407", "ORCH-0408")
def test_the_delivery_log_lists_each_delivery_a_page_at_a_time(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    webhook_id = str(subscribe(["*"])["webhook_id"])
    run = _run_to_end(wire)
    run_id = str(run["run_id"])
    orch_webhook_receiver.wait_for(f"run.{run['state']}", run_id)
    delivered = {str(r.delivery_id): r for r in orch_webhook_receiver.accepted(run_id)}
    entries = _wait_log(
        wire,
        webhook_id,
        lambda log: len(log) == len(delivered) and all(d["state"] == "delivered" for d in log),
        "ORCH-0408: a delivery the receiver answered 200 must be logged delivered",
    )
    with orch_check("ORCH-0407"):
        for entry in entries:
            expect(
                set(entry) == DELIVERY_FIELDS,
                f"ORCH-0407: a log entry holds exactly {sorted(DELIVERY_FIELDS)}; got {entry}",
            )
        expect(
            [e["event_id"] for e in entries] == sorted(e["event_id"] for e in entries),
            f"ORCH-0407: the log is in creation order; got {entries}",
        )
        expect(
            {e["delivery_id"] for e in entries} == set(delivered),
            f"ORCH-0407: the log must hold the deliveries the receiver got; got {entries}",
        )
        first = _log(wire, webhook_id, limit=2)
        expect(
            first["deliveries"] == entries[:2] and first["next_cursor"] is not None,
            f"ORCH-0407: limit=2 gives the first two and a cursor; got {first}",
        )
        rest = _log(wire, webhook_id, limit=100, cursor=first["next_cursor"])
        expect(
            rest["deliveries"] == entries[2:] and rest["next_cursor"] is None,
            f"ORCH-0407: the cursor continues after the page's last; got {rest}",
        )
        only = _log(wire, webhook_id, run_id=run_id, state="delivered")["deliveries"]
        expect(only == entries, f"ORCH-0407: filtered by run_id and state; got {only}")
        none = _log(wire, webhook_id, state="failed")["deliveries"]
        expect(none == [], f"ORCH-0407: no delivery failed; got {none}")
        for query in ({"limit": 0}, {"limit": 101}, {"state": "lost"}, {"cursor": "x"}):
            expect_error(
                wire.http.get(f"/v1/webhooks/{webhook_id}/deliveries", params=query),
                400,
                "INVALID_PARAMS",
                "ORCH-0407",
                f"the query {query}",
            )
    with orch_check("ORCH-0408"):
        for entry in entries:
            record = delivered[entry["delivery_id"]]
            expect(
                entry["attempts"] == 1
                and entry["last_status"] == 200
                and entry["last_error"] is None
                and entry["delivered_at"] is not None
                and (entry["event"], entry["event_id"], entry["run_id"])
                == (record.event, record.event_id, record.run_id),
                f"ORCH-0408: a delivery accepted at once is logged with one attempt, status "
                f"200, no error and its delivered_at; got {entry}",
            )


@pytest.mark.req("ORCH-0411", "ORCH-0412", "ORCH-0414", "ORCH-0408")
def test_a_failed_attempt_is_retried_under_its_id_with_a_fresh_signature(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    webhook_id = str(subscribe(["run.started"])["webhook_id"])
    orch_webhook_receiver.fail_next(1, status=500)
    run = _run_to_end(wire)
    run_id = str(run["run_id"])
    with orch_check("ORCH-0414"):
        accepted = orch_webhook_receiver.wait_for("run.started", run_id, requirement="ORCH-0414")
    attempts = orch_webhook_receiver.attempts(str(accepted.delivery_id))
    with orch_check("ORCH-0411"):
        failed = [r for r in orch_webhook_receiver.records() if r.verdict == "failed"]
        expect(
            len(failed) == 1 and failed[0].run_id == run_id,
            f"ORCH-0414: the receiver failed one attempt; got {[r.summary() for r in failed]}",
            "ORCH-0414",
        )
        expect(
            failed[0].delivery_id == accepted.delivery_id and len(attempts) == 2,
            f"ORCH-0411: the retry must carry the failed attempt's delivery id "
            f"{failed[0].delivery_id}; it carried {accepted.delivery_id}",
        )
        expect(
            failed[0].body == accepted.body,
            "ORCH-0411: a retry sends the same delivery (the same body)",
        )
    with orch_check("ORCH-0412"):
        for record in attempts:
            _check_signed(record, orch_webhook_receiver.secret)
        stamps = [int(str(r.header("Orch-Webhook-Timestamp"))) for r in attempts]
        expect(
            stamps == sorted(stamps),
            f"ORCH-0412: each attempt is stamped when sent; got {stamps}",
        )
    with orch_check("ORCH-0408"):
        entries = _wait_log(
            wire,
            webhook_id,
            lambda log: bool(log) and log[0]["state"] == "delivered",
            "ORCH-0408: the retried delivery must be logged delivered",
        )
        expect(
            entries[0]["attempts"] == 2 and entries[0]["last_status"] == 200,
            f"ORCH-0408: two attempts, the last answered 200; got {entries[0]}",
        )


@pytest.mark.req("ORCH-0413")
def test_a_redirect_is_a_failed_attempt(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    webhook_id = str(subscribe(["run.started"])["webhook_id"])
    orch_webhook_receiver.fail_next(1, status=307)
    run_id = str(_run_to_end(wire)["run_id"])
    orch_webhook_receiver.wait_for("run.started", run_id, requirement="ORCH-0413")
    with orch_check("ORCH-0413"):
        entry = _wait_log(
            wire,
            webhook_id,
            lambda log: bool(log) and log[0]["state"] != "pending",
            "ORCH-0413: the delivery must end delivered after its redirect",
        )[0]
        expect(
            entry["attempts"] == 2 and entry["last_status"] == 200,
            f"ORCH-0413: a 307 answer is a failed attempt, not a redirect to follow: the "
            f"delivery must take a second attempt; got {entry}",
        )


@pytest.mark.req("ORCH-0415")
def test_a_lane_is_delivered_strictly_in_order(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    subscribe(["*"])
    orch_webhook_receiver.fail_next(2, status=503)
    run = _run_to_end(wire, steps=3)
    run_id = str(run["run_id"])
    orch_webhook_receiver.wait_for(f"run.{run['state']}", run_id, timeout=20)
    with orch_check("ORCH-0415"):
        records = [r for r in orch_webhook_receiver.records() if r.run_id == run_id]
        order = [(r.event_id, r.verdict) for r in records]
        done: set[int] = set()
        for record in records:
            event_id = int(record.event_id or 0)
            expect(
                all(earlier in done for earlier in range(1, event_id)),
                f"ORCH-0415: event {event_id} was sent before every earlier event of the "
                f"run was delivered; the receiver saw {order}",
            )
            if record.verdict == "accepted":
                done.add(event_id)


@pytest.mark.req("ORCH-0414", "ORCH-0408")
def test_a_delivery_fails_after_its_last_attempt(
    orch_serve: ServeFactory, orch_webhook_receiver: Receiver
) -> None:
    target = orch_serve(**FAST_RETRIES)
    with Wire(target.url, target.auth_headers()) as wire:
        webhook_id = str(_subscribe_on(wire, orch_webhook_receiver, ["run.started"])["webhook_id"])
        orch_webhook_receiver.fail_next(10, status=500)
        run_id = str(_run_to_end(wire)["run_id"])
        entries = _wait_log(
            wire,
            webhook_id,
            lambda log: bool(log) and log[0]["state"] != "pending",
            "ORCH-0414: a delivery whose every attempt failed must end failed",
        )
        with orch_check("ORCH-0414"):
            sent = [r for r in orch_webhook_receiver.records() if r.run_id == run_id]
            expect(
                len(sent) == 3,
                f"ORCH-0414: webhook_max_attempts 3 means three attempts; the receiver got "
                f"{[r.summary() for r in sent]}",
            )
            gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
            expect(
                len(gaps) == 2 and gaps[0] >= 0.045 and gaps[1] >= 0.095,
                f"ORCH-0414: attempt n + 1 waits min(cap, base * 2^(n-1)) ms (50, then 100); "
                f"the gaps were {gaps} s",
            )
            time.sleep(0.3)
            expect(
                len([r for r in orch_webhook_receiver.records() if r.run_id == run_id]) == 3,
                "ORCH-0414: a failed delivery must not be sent again",
            )
        with orch_check("ORCH-0408"):
            entry = entries[0]
            expect(
                entry["state"] == "failed"
                and entry["attempts"] == 3
                and entry["last_status"] == 500
                and isinstance(entry["last_error"], str)
                and entry["last_error"]
                and entry["delivered_at"] is None,
                f"ORCH-0408: a failed delivery is logged failed, with its three attempts, the "
                f"last status and error; got {entry}",
            )


@pytest.mark.slow
@pytest.mark.req("ORCH-0413")
def test_an_attempt_not_answered_in_time_fails_and_is_retried(
    orch_serve: ServeFactory, orch_webhook_receiver: Receiver
) -> None:
    held_s = 4.0
    target = orch_serve(webhook_timeout_ms=1000, **FAST_RETRIES)
    with Wire(target.url, target.auth_headers()) as wire:
        webhook_id = str(_subscribe_on(wire, orch_webhook_receiver, ["run.started"])["webhook_id"])
        orch_webhook_receiver.delay_next(1, seconds=held_s)
        run_id = str(_run_to_end(wire)["run_id"])
        with orch_check("ORCH-0413"):
            accepted = orch_webhook_receiver.wait_for(
                "run.started", run_id, timeout=held_s, requirement="ORCH-0413"
            )
            orch_webhook_receiver.wait_until(
                lambda records: any(r.verdict == "failed" for r in records), timeout=held_s + 5
            )
            held = next(r for r in orch_webhook_receiver.records() if r.verdict == "failed")
            expect(
                held.delivery_id == accepted.delivery_id and accepted.at - held.at < held_s,
                "ORCH-0413: an attempt not answered within webhook_timeout_ms (1000) must fail "
                f"and be retried before its late answer ({held_s:g} s); the retry came "
                f"{accepted.at - held.at:.2f} s after it",
            )
            entry = _wait_log(
                wire,
                webhook_id,
                lambda log: bool(log) and log[0]["state"] == "delivered",
                "ORCH-0413: the retry answered 200 must be logged delivered",
            )[0]
            expect(
                entry["attempts"] >= 2,
                f"ORCH-0413: the late answer is a failed attempt; got {entry}",
            )


@pytest.mark.req("ORCH-0403", "ORCH-0405", "ORCH-0406")
def test_a_configured_subscription_is_listed_delivered_and_kept(
    orch_serve: ServeFactory, orch_webhook_receiver: Receiver
) -> None:
    configured = _subscription(orch_webhook_receiver, ["run.completed"])
    target = orch_serve(webhooks=[configured])
    with Wire(target.url, target.auth_headers()) as wire:
        listed = wire.http.get("/v1/webhooks").json()["webhooks"]
        with orch_check("ORCH-0403"):
            expect(
                len(listed) == 1
                and listed[0]["source"] == "config"
                and listed[0]["url"] == configured["url"],
                f"ORCH-0403: the configured subscription is listed with source 'config'; "
                f"got {listed}",
            )
        run_id = str(_run_to_end(wire)["run_id"])
        with orch_check("ORCH-0406"):
            orch_webhook_receiver.wait_for("run.completed", run_id)
        with orch_check("ORCH-0405"):
            expect_error(
                wire.http.delete(f"/v1/webhooks/{listed[0]['webhook_id']}"),
                409,
                "CONFLICT",
                "ORCH-0405",
                "deleting a configured subscription",
            )


@pytest.mark.slow
@pytest.mark.req("ORCH-0416", "ORCH-0411")
def test_a_pending_delivery_survives_a_restart(
    orch_process: ServeFactory, orch_webhook_receiver: Receiver
) -> None:
    target: Target = orch_process(webhook_backoff_base_ms=200, webhook_backoff_cap_ms=200)
    with Wire(target.url, target.auth_headers()) as wire:
        _subscribe_on(wire, orch_webhook_receiver, ["run.started", "run.completed"])
        orch_webhook_receiver.fail_next(1000, status=503)
        run_id = str(_run_to_end(wire)["run_id"])
        sent = orch_webhook_receiver.wait_until(
            lambda records: {r.event for r in records if r.run_id == run_id} >= {"run.started"},
            timeout=10,
        )
    target.terminate()
    before = {str(r.delivery_id) for r in orch_webhook_receiver.records() if r.run_id == run_id}
    expect(
        sent and before,
        "ORCH-0406: the receiver got no attempt of the run's deliveries before the restart",
        "ORCH-0406",
    )
    orch_webhook_receiver.clear()
    target = target.restart()
    with orch_check("ORCH-0416"):
        started = orch_webhook_receiver.wait_for("run.started", run_id, requirement="ORCH-0416")
        orch_webhook_receiver.wait_for("run.completed", run_id, requirement="ORCH-0416")
    with orch_check("ORCH-0411"):
        expect(
            started.delivery_id in before,
            f"ORCH-0411: after the restart the delivery is sent under its id {sorted(before)}; "
            f"got {started.delivery_id}",
        )


@pytest.mark.req("ORCH-0420")
def test_webhook_metrics_count_attempts_with_bounded_labels(
    wire: Wire, orch_webhook_receiver: Receiver, subscribe: Subscribe
) -> None:
    subscribe(["run.started"])
    run_id = str(_run_to_end(wire)["run_id"])
    orch_webhook_receiver.wait_for("run.started", run_id)
    deadline = time.monotonic() + 5
    while True:
        text = wire.http.get("/metrics").text
        lines = [line for line in text.splitlines() if line.startswith("orchq_webhook_")]
        delivered = [
            line
            for line in lines
            if line.startswith('orchq_webhook_deliveries_total{outcome="delivered"}')
        ]
        if delivered and float(delivered[0].rsplit(" ", 1)[1]) >= 1:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f'ORCH-0420: orchq_webhook_deliveries_total{{outcome="delivered"}} must count '
                f"the delivered attempt; /metrics has {lines}"
            )
        time.sleep(0.05)
    with orch_check("ORCH-0420"):
        for name in (
            "orchq_webhook_deliveries_total",
            "orchq_webhook_attempt_duration_seconds_count",
            "orchq_webhook_deliveries_pending",
        ):
            expect(
                any(line.startswith(name) for line in lines),
                f"ORCH-0420: /metrics must expose {name}; got {lines}",
            )
        for line in lines:
            labels = line.split("{", 1)[1].split("}", 1)[0] if "{" in line else ""
            keys = {pair.split("=", 1)[0] for pair in labels.split(",") if pair}
            expect(
                keys <= {"outcome", "le"} and run_id not in line,
                f"ORCH-0420: webhook metrics carry no URL, subscription, run or delivery "
                f"label; got {line}",
            )
