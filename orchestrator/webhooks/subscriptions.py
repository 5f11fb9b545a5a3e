"""What a subscription is allowed to be (ORCH-0400), shared by the API and the configuration."""

from __future__ import annotations

import re
from collections.abc import Sequence

from orchestrator.vocabulary import RUN_EVENTS

ALL_EVENTS = "*"
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
MAX_URL_CHARS = 2048


_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
URL_PATTERN = r"^https?://[A-Za-z0-9._~%-]+(:" + _PORT + r")?([/?#][!-~]*)?$"
"""What a subscription's ``url`` is (ORCH-0400): http(s), a host (a name or an IPv4 address),
an optional port up to 65535, then visible ASCII; no credentials. A bracketed IPv6 literal
is not taken: no pattern short of a full IPv6 grammar tells ``[::1]`` from ``[0]``, and
the OpenAPI document publishes this as the field's ``pattern``, so both must say the same."""
_URL = re.compile(URL_PATTERN)


def check_url(url: str) -> str:
    """``url`` if it matches :data:`URL_PATTERN` within :data:`MAX_URL_CHARS`; else ValueError."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"at most {MAX_URL_CHARS} characters")
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http or https URL")
    if _URL.fullmatch(url) is None:  # fullmatch: `$` alone lets a final newline in
        raise ValueError(
            "must be http(s)://HOST[:PORT][/PATH] with a host name or address, a port up to "
            "65535 and visible ASCII characters only"
        )
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
