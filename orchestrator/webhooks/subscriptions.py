"""What a subscription is allowed to be (ORCH-0400), shared by the API and the configuration."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from orchestrator.vocabulary import RUN_EVENTS

ALL_EVENTS = "*"
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
MAX_URL_CHARS = 2048


def check_url(url: str) -> str:
    """``url`` if an absolute http(s) URL with a host; else ``ValueError`` saying why."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("must not contain spaces or control characters")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    """``events`` when a non-empty list of distinct run event names, or exactly ``["*"]``."""
    if not events:
        raise ValueError('must name at least one run event, or be ["*"]')
    if list(events) == [ALL_EVENTS]:
        return [ALL_EVENTS]
    if ALL_EVENTS in events:
        raise ValueError('"*" must be the only entry')
    seen: set[str] = set()
    for index, name in enumerate(events):
        if name not in RUN_EVENTS:
            raise ValueError(f"[{index}] {name!r} is not a run event of section 12.5")
        if name in seen:
            raise ValueError(f"[{index}] {name!r} is named twice")
        seen.add(name)
    return list(events)


def selects(events: Sequence[str], event: str) -> bool:
    """Whether a subscription to ``events`` gets a delivery of ``event``."""
    return ALL_EVENTS in events or event in events
