"""Ground truth for ``/metrics``: what a workload with outcomes the harness knows must count.

A :class:`Truth` holds, for every counter of the spec's table, the growth each
label set must show, and for every histogram the observations it must have
made, as :class:`Span` objects whose bounds in seconds the harness measured
itself with its own clock (a duration inside a request the harness timed
cannot be longer than that request). Label sets are the table's labels only
(``required`` in the lint file): an implementation may add labels, whose
values are summed over.

The comparison is between two scrapes (before and after the workload), so it
holds on any target nobody else uses meanwhile:

- ORCH-0240: every counter grew by exactly the truth for every label set, and
  no other label set grew;
- ORCH-0241: every histogram made exactly the truth's number of observations;
  their sum lies within the measured bounds, and every bucket holds at least
  the observations measured to fit in it and at most those that could (a
  histogram observed in milliseconds, or in any unit but seconds, fails both).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.metrics.exposition import Exposition, Violation
from harness.metrics.lint import MetricsLint

__all__ = ["COUNTS", "OBSERVES", "Span", "Truth", "truth_violations"]

COUNTS = "ORCH-0240"
OBSERVES = "ORCH-0241"

LabelSet = tuple[tuple[str, str], ...]


def label_set(**labels: str) -> LabelSet:
    return tuple(sorted(labels.items()))


def _show(name: str, labels: LabelSet) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


@dataclass(frozen=True)
class Span:
    """``count`` observations in seconds: each within ``[each_low, each_high]``, all together
    within ``[total_low, total_high]``."""

    count: int
    each_low: float
    each_high: float
    total_low: float = 0.0
    total_high: float = math.inf

    @classmethod
    def one(cls, low: float, high: float) -> Span:
        """A single observation known to lie between ``low`` and ``high`` seconds."""
        return cls(1, low, high, low, high)


@dataclass
class Truth:
    """Expected counter growth and histogram observations, by metric and label set."""

    counters: dict[str, Counter[LabelSet]] = field(default_factory=lambda: defaultdict(Counter))
    histograms: dict[str, dict[LabelSet, list[Span]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def count(self, metric: str, amount: int = 1, **labels: str) -> None:
        if amount:
            self.counters[metric][label_set(**labels)] += amount

    def observe(self, metric: str, span: Span, **labels: str) -> None:
        if span.count:
            self.histograms[metric][label_set(**labels)].append(span)


def _table_labels(lint: MetricsLint, metric: str) -> list[str]:
    spec = lint.metrics.get(metric)
    return sorted(k for k, v in spec.labels.items() if v.required) if spec else []


def _values(
    expo: Exposition, sample: str, keys: list[str], by_le: bool = False
) -> dict[Any, float]:
    """Sample values summed per projection onto ``keys`` (and ``le`` when ``by_le``)."""
    out: dict[Any, float] = defaultdict(float)
    for family in expo.families:
        for s in family.samples:
            if s.name != sample:
                continue
            key: Any = tuple((k, s.labels.get(k, "")) for k in keys)
            if by_le:
                key = (key, float(s.labels.get("le", "nan")))
            out[key] += float(s.value)
    return out


def _grown(
    before: Exposition, after: Exposition, sample: str, keys: list[str], by_le: bool = False
) -> dict[Any, float]:
    earlier = _values(before, sample, keys, by_le)
    later = _values(after, sample, keys, by_le)
    return {key: later.get(key, 0.0) - earlier.get(key, 0.0) for key in set(earlier) | set(later)}


def truth_violations(
    before: Exposition,
    after: Exposition,
    truth: Truth,
    lint: MetricsLint,
    names: Iterable[str] | None = None,
) -> list[Violation]:
    """Every counter and histogram of the table, or of ``names``, against ``truth`` (see the
    module docstring)."""
    out: list[Violation] = []
    wanted = None if names is None else set(names)
    for name, spec in sorted(lint.metrics.items()):
        if not spec.required if wanted is None else name not in wanted:
            continue
        keys = _table_labels(lint, name)
        if spec.type == "counter":
            out += _counter(
                name, _grown(before, after, name, keys), truth.counters.get(name, Counter())
            )
        elif spec.type == "histogram":
            out += _histogram(name, before, after, keys, truth.histograms.get(name, {}))
    return out


def _counter(
    name: str, grown: dict[LabelSet, float], expected: Counter[LabelSet]
) -> list[Violation]:
    out = []
    for labels in sorted(set(grown) | set(expected)):
        got, want = grown.get(labels, 0.0), expected.get(labels, 0)
        if not math.isclose(got, want, abs_tol=1e-9):
            out.append(
                Violation(
                    COUNTS,
                    f"{_show(name, labels)} grew by {got:g}; the workload's known outcomes make "
                    f"it {want}",
                )
            )
    return out


def _histogram(
    name: str,
    before: Exposition,
    after: Exposition,
    keys: list[str],
    expected: dict[LabelSet, list[Span]],
) -> list[Violation]:
    counts = _grown(before, after, f"{name}_count", keys)
    sums = _grown(before, after, f"{name}_sum", keys)
    buckets = _grown(before, after, f"{name}_bucket", keys, by_le=True)
    out = []
    for labels in sorted(set(counts) | set(expected)):
        series = _show(name, labels)
        spans = expected.get(labels, [])
        want = sum(span.count for span in spans)
        got = counts.get(labels, 0.0)
        if not math.isclose(got, want, abs_tol=1e-9):
            out.append(
                Violation(
                    OBSERVES,
                    f"{series} made {got:g} observations; the workload's known events make {want}",
                )
            )
            continue
        if not spans:
            continue
        low = sum(span.total_low for span in spans)
        high = sum(span.total_high for span in spans)
        total = sums.get(labels, 0.0)
        if not low <= total <= high:
            out.append(
                Violation(
                    OBSERVES,
                    f"{series}: its {want} observations sum to {total:.6g} s, but the harness "
                    f"measured these durations between {low:.6g} s and {high:.6g} s (a unit "
                    "other than seconds?)",
                )
            )
        out += _bucket_bounds(series, spans, _series_buckets(buckets, labels))
    return out


def _series_buckets(buckets: dict[Any, float], labels: LabelSet) -> dict[float, float]:
    return {le: value for (key, le), value in buckets.items() if key == labels}


def _bucket_bounds(
    series: str, spans: Iterable[Span], cumulative: dict[float, float]
) -> list[Violation]:
    spans = list(spans)
    for le, got in sorted(cumulative.items()):
        surely = sum(span.count for span in spans if span.each_high <= le)
        possibly = sum(span.count for span in spans if span.each_low <= le)
        if not surely <= got <= possibly:
            bound = "+Inf" if math.isinf(le) else f"{le:g}"
            return [
                Violation(
                    OBSERVES,
                    f"{series}: bucket le={bound} holds {got:g} new observations, but by the "
                    f"durations the harness measured between {surely} and {possibly} fit in it "
                    "(observed in a unit other than seconds?)",
                )
            ]
    return []
