"""The /metrics contract: ``contracts/metrics.lint.json``, the promtool rules, a workload.

Split so each piece is testable alone: :mod:`.lint` (the declared set),
:mod:`.exposition` (scrape and parse), :mod:`.rules` (promtool), :mod:`.contract`
(the scrape against the lint file and the token delta) and :mod:`.workload`.
Imports stay light (no orchestrator, no httpx at import time) because the
conformance suite imports this package at collection.
"""

from harness.metrics.exposition import (
    Exposition,
    Violation,
    format_violations,
    parse_exposition,
    scrape,
)
from harness.metrics.lint import LintError, MetricsLint, load_lint
from harness.metrics.rules import exposition_violations, promtool_violations
from harness.metrics.violations import (
    configured_ids,
    contract_violations,
    label_value_violations,
    token_violations,
)

__all__ = [
    "Exposition",
    "LintError",
    "MetricsLint",
    "Violation",
    "configured_ids",
    "contract_violations",
    "exposition_violations",
    "format_violations",
    "label_value_violations",
    "load_lint",
    "parse_exposition",
    "promtool_violations",
    "scrape",
    "token_violations",
]
