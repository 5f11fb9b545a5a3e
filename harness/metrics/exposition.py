"""A scraped ``/metrics`` page: raw text, its HELP/TYPE lines, samples and parsed families.

Both views are kept on purpose. ``prometheus_client.parser`` is the reference
reader (if it cannot parse the page, nothing can), but it normalises exactly
what the promtool rules look at: it renames a counter's samples to end in
``_total`` even when the server did not, and reports a missing HELP as an
empty string. So the rules read names from the raw ``# HELP``/``# TYPE``
lines and sample lines, and values from the parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Exposition",
    "RawSample",
    "Violation",
    "format_violations",
    "parse_exposition",
    "scrape",
]

_SAMPLE_NAME = re.compile(r"^([^\s{]+)")
_LABEL = re.compile(r'([^\s{},="]+)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule, tied to the requirement it breaks."""

    req: str
    """The ORCH ID, e.g. ``ORCH-0132``."""
    message: str

    def __str__(self) -> str:
        return f"{self.req}: {self.message}"


def format_violations(violations: list[Violation]) -> str:
    """Sorted, deduplicated, one per line: the assertion message of a failed check."""
    return "\n".join(str(v) for v in sorted(set(violations)))


def expect_none(violations: list[Violation]) -> None:
    """Fail with every violation, blamed on the requirements they break; pass on none."""
    if violations:
        from harness.checks import RequirementFailure

        ids = sorted({v.req for v in violations})
        raise RequirementFailure(format_violations(violations), ids)


@dataclass(frozen=True)
class RawSample:
    name: str
    labels: dict[str, str]
    value: str


@dataclass
class Exposition:
    """One scrape: what the server sent and what the parser made of it."""

    text: str
    content_type: str = "text/plain; version=0.0.4"
    helps: dict[str, list[str]] = field(default_factory=dict)
    """HELP texts per name as written (a list, to see duplicates)."""
    types: dict[str, list[str]] = field(default_factory=dict)
    raw_samples: list[RawSample] = field(default_factory=list)
    families: list[Any] = field(default_factory=list)
    parse_error: str | None = None

    def total(self, name: str, **labels: str) -> float:
        """Sum of the (parsed) sample values called ``name`` matching ``labels``."""
        return sum(
            float(s.value)
            for family in self.families
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )


def parse_exposition(text: str, content_type: str = "text/plain; version=0.0.4") -> Exposition:
    """Split the page into HELP/TYPE/sample lines and run the reference parser over it."""
    from prometheus_client.parser import text_string_to_metric_families

    expo = Exposition(text=text, content_type=content_type)
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line.removeprefix("# HELP ").partition(" ")
            expo.helps.setdefault(name, []).append(doc)
        elif line.startswith("# TYPE "):
            name, _, kind = line.removeprefix("# TYPE ").partition(" ")
            expo.types.setdefault(name, []).append(kind.strip())
        elif line.strip() and not line.startswith("#"):
            match = _SAMPLE_NAME.match(line)
            if match is None:
                continue
            name = match.group(1)
            rest = line[len(name) :]
            labels: dict[str, str] = {}
            if rest.startswith("{"):
                body, _, rest = rest[1:].partition("}")
                labels = {k: v for k, v in _LABEL.findall(body)}
            expo.raw_samples.append(RawSample(name, labels, rest.strip()))
    try:
        expo.families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError, but also others on odd input
        expo.parse_error = f"{type(exc).__name__}: {exc}"
    return expo


def scrape(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Exposition]:
    """``GET {url}/metrics``: the status and the parsed page (also for a non-200 answer)."""
    import httpx

    response = httpx.get(f"{url.rstrip('/')}/metrics", headers=dict(headers or {}), timeout=30)
    content_type = response.headers.get("content-type", "")
    return response.status_code, parse_exposition(response.text, content_type)
