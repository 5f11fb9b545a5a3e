"""Load ``contracts/metrics.lint.json``: the declared metric set with label budgets.

The lint file is the contract's data, this module its typed view. Every label
declares the closed set its values come from (ORCH-0242): a list, the configured
pool or replica IDs, or (for build metadata) a pattern. It is validated strictly
on load (unknown keys, wrong types and unsorted lists are errors) because a typo
in a budget would otherwise silently loosen the check. The path defaults to the
``contracts/metrics.lint.json`` shipped with orchq; the environment variable
``ORCHQ_METRICS_LINT`` points the conformance suite at another implementation's
declaration.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LINT_ENV",
    "METRIC_TYPES",
    "LabelRule",
    "LintError",
    "MetricRule",
    "MetricsLint",
    "canonical_json",
    "default_lint_path",
    "load_lint",
    "parse_lint",
]

LINT_ENV = "ORCHQ_METRICS_LINT"
METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary"})
CONFIGURED_IDS = frozenset({"pool_id", "replica_id"})
"""What ``values_from`` may name: the target's configured IDs, as ``GET /v1/pools`` lists them."""


class LintError(ValueError):
    """The lint file is malformed; the message names the file and the offending key."""


@dataclass(frozen=True)
class LabelRule:
    budget: int
    """Most distinct values this label may take on one metric."""
    required: bool
    """The spec's table lists this label (ORCH-0134: at least these labels)."""
    values: frozenset[str] | None = None
    """The closed set of values (ORCH-0242), when it is fixed."""
    values_from: str | None = None
    """Or: the values are the target's configured IDs of this kind (``pool_id``, ``replica_id``)."""
    pattern: str | None = None
    """Or: build metadata, a full-match regex (with a budget of 1)."""

    def allows(self, value: str, configured: dict[str, frozenset[str]]) -> bool:
        """Whether ``value`` is in the label's closed set; ``configured`` maps kind to IDs."""
        if self.values is not None:
            return value in self.values
        if self.values_from is not None:
            return value in configured.get(self.values_from, frozenset())
        return self.pattern is not None and re.fullmatch(self.pattern, value) is not None

    def describe(self) -> str:
        if self.values is not None:
            return f"one of {sorted(self.values)}"
        if self.values_from is not None:
            return f"a configured {self.values_from}"
        return f"a value matching {self.pattern!r}"


@dataclass(frozen=True)
class MetricRule:
    name: str
    """The sample name as exposed (counters with ``_total``)."""
    type: str
    help_required: bool
    labels: dict[str, LabelRule]
    required: bool
    """Listed in the spec's table (ORCH-0134); otherwise an ORCH-0136 extra."""
    meaning: str


@dataclass(frozen=True)
class MetricsLint:
    prefix: str
    max_buckets: int
    forbidden_labels: frozenset[str]
    metrics: dict[str, MetricRule]
    source: str
    """Where the lint came from, for messages."""


def canonical_json(data: Any) -> str:
    """The one byte-stable rendering of the lint file (sorted keys, 2-space indent)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _require(cond: bool, source: str, where: str, what: str) -> None:
    if not cond:
        raise LintError(f"{source}: {where}: {what}")


def _keys(obj: Any, source: str, where: str, required: set[str], optional: set[str]) -> None:
    _require(isinstance(obj, dict), source, where, "must be an object")
    keys = set(obj)
    _require(not (required - keys), source, where, f"missing {sorted(required - keys)}")
    extra = keys - required - optional
    _require(not extra, source, where, f"unknown keys {sorted(extra)}")


def _label(obj: Any, source: str, where: str) -> LabelRule:
    closed = {"values", "values_from", "pattern"}
    _keys(obj, source, where, {"budget", "required"}, closed)
    given = sorted(closed & set(obj))
    _require(
        len(given) == 1, source, where, f"needs exactly one of {sorted(closed)} (its closed set)"
    )
    values = obj.get("values")
    if values is not None:
        _require(
            isinstance(values, list) and bool(values) and all(isinstance(v, str) for v in values),
            source,
            where,
            "values must be a non-empty list of strings",
        )
        _require(values == sorted(set(values)), source, where, "values: sorted, unique")
    values_from = obj.get("values_from")
    if values_from is not None:
        _require(
            values_from in CONFIGURED_IDS,
            source,
            where,
            f"values_from must be one of {sorted(CONFIGURED_IDS)}",
        )
    pattern = obj.get("pattern")
    if pattern is not None:
        _require(isinstance(pattern, str), source, where, "pattern must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise LintError(f"{source}: {where}: pattern: {exc}") from None
    budget, required = obj["budget"], obj["required"]
    _require(
        isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1,
        source,
        where,
        "budget must be an integer >= 1",
    )
    _require(isinstance(required, bool), source, where, "required must be a boolean")
    return LabelRule(
        budget=budget,
        required=required,
        values=frozenset(values) if values is not None else None,
        values_from=values_from,
        pattern=pattern,
    )


def _metric(name: str, obj: Any, source: str) -> MetricRule:
    where = f"metrics.{name}"
    _keys(obj, source, where, {"type", "help_required", "labels", "required", "meaning"}, set())
    _require(
        obj["type"] in METRIC_TYPES, source, where, f"type must be one of {sorted(METRIC_TYPES)}"
    )
    _require(isinstance(obj["help_required"], bool), source, where, "help_required: boolean")
    _require(isinstance(obj["required"], bool), source, where, "required: boolean")
    _require(isinstance(obj["meaning"], str), source, where, "meaning: string")
    labels = obj["labels"]
    _require(isinstance(labels, dict), source, where, "labels must be an object")
    return MetricRule(
        name=name,
        type=obj["type"],
        help_required=obj["help_required"],
        labels={k: _label(v, source, f"{where}.labels.{k}") for k, v in labels.items()},
        required=obj["required"],
        meaning=obj["meaning"],
    )


def parse_lint(data: Any, source: str = "metrics.lint.json") -> MetricsLint:
    """Validate a decoded lint document and build its typed view."""
    _keys(
        data,
        source,
        "top level",
        {"version", "prefix", "max_buckets", "forbidden_labels", "metrics"},
        {"description"},
    )
    _require(data["version"] == 1, source, "version", "only version 1 is known")
    _require(isinstance(data["prefix"], str), source, "prefix", "must be a string")
    max_buckets = data["max_buckets"]
    _require(
        isinstance(max_buckets, int) and max_buckets >= 1, source, "max_buckets", "integer >= 1"
    )
    forbidden = data["forbidden_labels"]
    _require(
        isinstance(forbidden, list) and all(isinstance(x, str) for x in forbidden),
        source,
        "forbidden_labels",
        "must be a list of strings",
    )
    _require(forbidden == sorted(set(forbidden)), source, "forbidden_labels", "sorted, unique")
    metrics = data["metrics"]
    _require(isinstance(metrics, dict), source, "metrics", "must be an object")
    specs = {name: _metric(name, obj, source) for name, obj in metrics.items()}
    for spec in specs.values():
        clash = set(spec.labels) & set(forbidden)
        _require(not clash, source, f"metrics.{spec.name}", f"forbidden labels {sorted(clash)}")
    return MetricsLint(
        prefix=data["prefix"],
        max_buckets=max_buckets,
        forbidden_labels=frozenset(forbidden),
        metrics=specs,
        source=source,
    )


def default_lint_path() -> Path:
    """The metrics contract shipped with orchq (:mod:`harness.resources`)."""
    from harness import resources

    return resources.path(resources.METRICS_LINT)


def load_lint(path: str | Path | None = None) -> MetricsLint:
    """The lint file at ``path``, ``$ORCHQ_METRICS_LINT`` or the one shipped with orchq."""
    chosen = Path(path or os.environ.get(LINT_ENV) or default_lint_path())
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise LintError(f"{chosen}: cannot read metrics lint file: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LintError(f"{chosen}: not JSON: {exc}") from None
    return parse_lint(data, source=chosen.name)
