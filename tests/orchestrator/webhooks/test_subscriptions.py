"""The rules of a subscription (ORCH-0400), shared by the API model and the configuration."""

from __future__ import annotations

import pytest

from orchestrator.config import ConfigError, parse_config
from orchestrator.runtime.webhooks import config_webhook_id, retry_delay_ms
from orchestrator.webhooks.subscriptions import check_events, check_url, selects

SECRET = "s" * 16


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://h/x", "http or https"),
        ("http:///x", "host"),
        ("/hooks", "http or https"),
        ("http://h:port/x", "HOST"),
        ("http://h:65536/x", "HOST"),
        ("http://user:pw@h/x", "HOST"),
        ("http://[::1]:9/x", "HOST"),
        ("http://[0]/x", "HOST"),
        ("http://h/a b", "visible ASCII"),
        ("http://h/x\n", "visible ASCII"),
        ("http://h/\u00e9", "visible ASCII"),
        ("http://h/" + "a" * 2048, "2048"),
    ],
)
def test_a_url_that_is_not_absolute_http_with_a_host_is_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_url(url)


def test_http_and_https_urls_with_a_host_are_kept() -> None:
    for url in (
        "http://127.0.0.1:8080/h",
        "https://example.com",
        "http://0:9/x?y=1",
        "http://h:65535#f",
    ):
        assert check_url(url) == url


def test_events_are_run_event_names_or_the_star_alone() -> None:
    assert check_events(["*"]) == ["*"]
    assert check_events(["run.failed", "step.failed"]) == ["run.failed", "step.failed"]
    for bad, why in (
        ([], "at least one"),
        (["*", "run.failed"], "only entry"),
        (["run.paused"], "not a run event"),
        (["run.failed", "run.failed"], "twice"),
    ):
        with pytest.raises(ValueError, match=why):
            check_events(bad)
    assert selects(["*"], "step.skipped") and selects(["run.failed"], "run.failed")
    assert not selects(["run.failed"], "run.completed")


def test_a_configured_subscription_is_checked_like_one_from_the_api() -> None:
    good = {"url": "http://h/x", "events": ["*"], "secret": SECRET}
    assert parse_config({"webhooks": [good]}).webhooks[0].url == "http://h/x"
    for broken, message in (
        ({**good, "url": "ftp://h"}, "webhooks[0]: url: must be an http or https URL"),
        ({**good, "events": ["nope"]}, "webhooks[0]: events: [0] 'nope' is not a run event"),
        ({**good, "secret": "short"}, "webhooks[0].secret: String should have at least 16"),
        ({**good, "colour": 1}, "webhooks[0].colour: unknown key"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config({"webhooks": [broken]})
        assert message in str(caught.value)
    with pytest.raises(ConfigError, match="webhook_max_attempts"):
        parse_config({"webhook_max_attempts": 0})


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [retry_delay_ms(n, 1000, 60_000) for n in range(1, 9)] == [
        1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000,
    ]  # fmt: skip
    assert retry_delay_ms(3, 0, 100) == 0


def test_a_configured_subscription_keeps_its_id_while_it_is_the_same() -> None:
    first = config_webhook_id("http://h/x", ["*"], SECRET)
    assert first == config_webhook_id("http://h/x", ["*"], SECRET)
    assert first != config_webhook_id("http://h/x", ["run.failed"], SECRET)
    assert first != config_webhook_id("http://h/x", ["*"], SECRET + "x")
