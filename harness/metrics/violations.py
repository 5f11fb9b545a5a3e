"""A scrape against ``metrics.lint.json``: the declared set, types, labels and budgets.

ORCH-0134 (the table's metrics with their types and labels), ORCH-0133 (no
label fed by request input: forbidden label names, label values equal to
anything the workload sent, and per-label cardinality budgets, which catch a
leak under an innocent label name once the workload is wide enough), and
ORCH-0136 (extra metrics are allowed, but this harness can only bound what is
declared, so an undeclared metric fails until the lint file lists it), and
ORCH-0242 (every label value is in its label's closed set; the pool and replica
IDs of that set are the ones ``GET /v1/pools`` lists).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from harness.metrics.exposition import Exposition, Violation
from harness.metrics.lint import MetricsLint

__all__ = [
    "TOKENS_METRIC",
    "configured_ids",
    "contract_violations",
    "label_value_violations",
    "token_violations",
]

LEAK = "ORCH-0133"
CLOSED_SET = "ORCH-0242"
TABLE = "ORCH-0134"
TOKENS = "ORCH-0135"
EXTRA = "ORCH-0136"
TOKENS_METRIC = "orchq_generated_tokens_total"


def _declared_name(lint: MetricsLint, type_name: str, kind: str) -> str:
    # a counter TYPE line may (correctly) carry _total or, from a broken server, not
    if kind == "counter" and type_name in lint.metrics:
        return type_name
    if kind == "counter" and f"{type_name}_total" in lint.metrics:
        return f"{type_name}_total"
    return type_name


def contract_violations(
    expo: Exposition, lint: MetricsLint, request_inputs: Iterable[str] = ()
) -> list[Violation]:
    """Every way the page breaks the lint file; ``request_inputs`` are values the workload sent."""
    out: list[Violation] = []
    exposed: dict[str, str] = {}
    for type_name, kinds in expo.types.items():
        exposed[_declared_name(lint, type_name, kinds[0])] = kinds[0]
    for name, spec in sorted(lint.metrics.items()):
        kind = exposed.get(name)
        if kind is None:
            if spec.required:
                out.append(Violation(TABLE, f"{name} ({spec.type}) is not exposed"))
            continue
        if kind != spec.type:
            out.append(Violation(TABLE, f"{name} is a {kind}, the contract says {spec.type}"))
        if spec.help_required and not any(d.strip() for d in expo.helps.get(name, [])):
            out.append(Violation("ORCH-0132", f"{name}: the contract requires a HELP text"))
    for name in sorted(set(exposed) - set(lint.metrics)):
        out.append(
            Violation(
                EXTRA,
                f"{name} is exposed but not declared in {lint.source}: an extra metric is "
                "allowed, but it needs an entry (type, labels, budgets) so ORCH-0133 can be "
                "checked on it",
            )
        )

    inputs = {v for v in request_inputs if v}
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    buckets: dict[str, set[str]] = defaultdict(set)
    for sample in expo.raw_samples:
        base = _base(sample.name, exposed)
        declared = lint.metrics.get(base) if base else None
        for label, value in sample.labels.items():
            if label == "le" and sample.name.endswith("_bucket"):
                buckets[base or sample.name].add(value)
                continue
            if label in lint.forbidden_labels:
                out.append(
                    Violation(LEAK, f"{sample.name}: forbidden label {label!r} (request input)")
                )
            elif declared is not None and label not in declared.labels:
                out.append(
                    Violation(LEAK, f"{sample.name}: label {label!r} is not declared (no budget)")
                )
            if value in inputs:
                out.append(
                    Violation(
                        LEAK,
                        f"{sample.name}: label {label}={value!r} is a value from request input",
                    )
                )
            values[(base or sample.name, label)].add(value)
        if declared is not None:
            given = set(sample.labels) - {"le"}
            missing = sorted(k for k, v in declared.labels.items() if v.required and k not in given)
            if missing:
                out.append(Violation(TABLE, f"{sample.name}: lacks the labels {missing}"))
    for (name, label), seen in sorted(values.items()):
        owner = lint.metrics.get(name)
        label_spec = owner.labels.get(label) if owner else None
        if label_spec is not None and len(seen) > label_spec.budget:
            out.append(
                Violation(
                    LEAK,
                    f"{name}: label {label!r} took {len(seen)} values, over its cardinality "
                    f"budget of {label_spec.budget}",
                )
            )
    for name, les in sorted(buckets.items()):
        if len(les) > lint.max_buckets:
            out.append(
                Violation(
                    LEAK, f"{name}: {len(les)} buckets, over the budget of {lint.max_buckets}"
                )
            )
    return out


def _base(sample: str, exposed: dict[str, str]) -> str | None:
    if sample in exposed:
        return sample
    if f"{sample}_total" in exposed:
        return f"{sample}_total"
    for suffix in ("_bucket", "_count", "_sum", "_total", "_created"):
        base = sample.removesuffix(suffix)
        if base != sample and base in exposed:
            return base
        if base != sample and f"{base}_total" in exposed:
            return f"{base}_total"
    return None


def token_violations(before: Exposition, after: Exposition, streamed: int) -> list[Violation]:
    """ORCH-0135: the tokens counter grew by exactly the tokens the workload streamed."""
    grown = after.total(TOKENS_METRIC) - before.total(TOKENS_METRIC)
    if grown == streamed:
        return []
    return [
        Violation(
            TOKENS,
            f"{TOKENS_METRIC} grew by {grown:g} while the workload streamed {streamed} tokens "
            "(each streamed token counts exactly once)",
        )
    ]


def configured_ids(pools: Any) -> dict[str, frozenset[str]]:
    """The pool and replica IDs of a ``GET /v1/pools`` document, by kind (``values_from``)."""
    listed = pools.get("pools", []) if isinstance(pools, dict) else []
    pool_ids = {str(p.get("pool_id")) for p in listed if isinstance(p, dict)}
    replica_ids = {
        str(r.get("replica_id"))
        for p in listed
        if isinstance(p, dict)
        for r in p.get("replicas", [])
        if isinstance(r, dict)
    }
    return {"pool_id": frozenset(pool_ids), "replica_id": frozenset(replica_ids)}


def label_value_violations(
    expo: Exposition, lint: MetricsLint, configured: dict[str, frozenset[str]]
) -> list[Violation]:
    """ORCH-0242: each value of each declared label is in the label's closed set."""
    exposed = {_declared_name(lint, n, kinds[0]): kinds[0] for n, kinds in expo.types.items()}
    out: list[Violation] = []
    for sample in expo.raw_samples:
        base = _base(sample.name, exposed)
        declared = lint.metrics.get(base) if base else None
        if declared is None:
            continue
        for label, value in sorted(sample.labels.items()):
            spec = declared.labels.get(label)
            if spec is not None and not spec.allows(value, configured):
                out.append(
                    Violation(
                        CLOSED_SET,
                        f"{sample.name}: label {label}={value!r} is not in its closed set "
                        f"({spec.describe()}, {lint.source})",
                    )
                )
    return out
