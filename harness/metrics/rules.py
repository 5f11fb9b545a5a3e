"""The ``promtool check metrics`` rules, as code (ORCH-0131, ORCH-0132).

promtool itself is a Go binary we do not ship; these are its lint rules
(``HELP`` on every metric, ``_total`` only and always on counters, base units,
no type names in names, snake_case without colons, the ``_bucket``/``_count``/
``_sum`` suffixes reserved for histograms and summaries) plus the spec's own
(``orchq_`` prefix, durations in ``_seconds``, no ``_created`` series).
Every rule yields a :class:`Violation` naming its ORCH ID instead of raising,
so one scrape reports every problem at once.
"""

from __future__ import annotations

import re

from harness.metrics.exposition import Exposition, Violation

__all__ = ["exposition_violations", "promtool_violations"]

FORMAT = "ORCH-0131"
RULES = "ORCH-0132"

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_TYPE_WORDS = ("counter", "gauge", "histogram", "summary")
_NON_BASE_UNITS = (
    "milliseconds",
    "millisecond",
    "microseconds",
    "nanoseconds",
    "minutes",
    "hours",
    "days",
    "ms",
    "us",
    "ns",
    "msec",
    "usec",
    "sec",
    "secs",
    "kilobytes",
    "megabytes",
    "gigabytes",
    "kb",
    "mb",
    "gb",
    "percent",
    "celsius",
    "fahrenheit",
)
_DURATION_WORDS = ("latency", "duration", "wait", "time", "elapsed", "age")
_RESERVED_SUFFIXES = ("_bucket", "_count", "_sum")
_HISTOGRAM_SUFFIXES = {"_bucket", "_count", "_sum"}
_SUMMARY_SUFFIXES = {"", "_count", "_sum"}


def exposition_violations(status: int, expo: Exposition) -> list[Violation]:
    """ORCH-0131: 200, a text/plain Prometheus page the reference parser reads."""
    out: list[Violation] = []
    if status != 200:
        out.append(Violation(FORMAT, f"GET /metrics answered {status}, not 200"))
    if not expo.content_type.startswith("text/plain"):
        out.append(Violation(FORMAT, f"content type {expo.content_type!r} is not the text format"))
    if expo.parse_error is not None:
        out.append(
            Violation(FORMAT, f"prometheus_client cannot parse /metrics: {expo.parse_error}")
        )
    if not expo.types:
        out.append(Violation(FORMAT, "/metrics holds no metric (no # TYPE line)"))
    return out


def _owner(sample: str, types: dict[str, str]) -> str | None:
    if sample in types:
        return sample
    for suffix in (*_RESERVED_SUFFIXES, "_total", "_created"):
        base = sample.removesuffix(suffix)
        if base != sample and base in types:
            return base
    return None


def _name_violations(name: str, kind: str, prefix: str) -> list[Violation]:
    out: list[Violation] = []
    if ":" in name:
        out.append(Violation(RULES, f"{name}: colons are reserved for recording rules"))
    if not _SNAKE.match(name.replace(":", "_")):
        out.append(Violation(RULES, f"{name}: metric names must be snake_case"))
    if not name.startswith(prefix):
        out.append(Violation(RULES, f"{name}: metric names must start with {prefix!r}"))
    words = name.lower().split("_")
    for word in _TYPE_WORDS:
        if word in words:
            out.append(Violation(RULES, f"{name}: metric name should not include type {word!r}"))
    for unit in _NON_BASE_UNITS:
        if unit in words:
            out.append(Violation(RULES, f"{name}: use base units (seconds, bytes), not {unit!r}"))
    if kind == "counter" and not name.endswith("_total"):
        out.append(Violation(RULES, f"counter {name} must end in _total"))
    if kind != "counter" and name.endswith("_total"):
        out.append(Violation(RULES, f"{kind} {name} must not end in _total (counters only)"))
    if kind not in ("histogram", "summary") and name.endswith(_RESERVED_SUFFIXES):
        out.append(
            Violation(RULES, f"{kind} {name}: _bucket/_count/_sum are reserved for histograms")
        )
    if kind == "histogram" and not name.endswith("_seconds"):
        out.append(Violation(RULES, f"histogram {name} must measure seconds (_seconds)"))
    if any(w in words for w in _DURATION_WORDS) and "seconds" not in words and kind != "counter":
        out.append(Violation(RULES, f"{name}: durations must be in seconds, named _seconds"))
    return out


def promtool_violations(expo: Exposition, prefix: str = "orchq_") -> list[Violation]:
    """Every promtool lint problem of the page, on the raw HELP/TYPE/sample lines."""
    out: list[Violation] = []
    types: dict[str, str] = {}
    for name, kinds in expo.types.items():
        if len(kinds) > 1:
            out.append(Violation(RULES, f"{name}: {len(kinds)} TYPE lines"))
        types[name] = kinds[0]
        if kinds[0] not in ("counter", "gauge", "histogram", "summary"):
            out.append(Violation(RULES, f"{name}: TYPE {kinds[0]!r} is not a metric type"))
    for name, docs in expo.helps.items():
        if len(docs) > 1:
            out.append(Violation(RULES, f"{name}: {len(docs)} HELP lines"))
        if name not in types:
            out.append(Violation(RULES, f"{name}: HELP without TYPE"))
    for name, kind in sorted(types.items()):
        help_lines = expo.helps.get(name)
        if not help_lines:
            out.append(Violation(RULES, f"{name}: no HELP line (promtool: HELP on every metric)"))
        elif not help_lines[0].strip():
            out.append(Violation(RULES, f"{name}: empty HELP text"))
        out.extend(_name_violations(name, kind, prefix))
    for sample in expo.raw_samples:
        if sample.name.endswith("_created"):
            out.append(Violation(RULES, f"{sample.name}: _created series must be disabled"))
            continue
        owner = _owner(sample.name, types)
        if owner is None:
            out.append(Violation(RULES, f"sample {sample.name} has no TYPE/HELP"))
            continue
        kind = types[owner]
        suffix = sample.name.removeprefix(owner)
        if kind == "histogram" and suffix not in _HISTOGRAM_SUFFIXES:
            out.append(Violation(RULES, f"histogram sample {sample.name}: not _bucket/_count/_sum"))
        elif kind == "summary" and suffix not in _SUMMARY_SUFFIXES:
            out.append(Violation(RULES, f"summary sample {sample.name}: not _count/_sum"))
        elif kind in ("counter", "gauge") and suffix:
            out.append(Violation(RULES, f"{kind} sample {sample.name} does not match {owner}"))
        if suffix == "_bucket" and "le" not in sample.labels:
            out.append(Violation(RULES, f"{sample.name}: bucket without an le label"))
    return out
