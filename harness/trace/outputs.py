"""Writing the report files of one :class:`~harness.trace.report.Trace`, shared by plugin and CLI.

Every text is rendered before the first file is touched, and each file is
replaced atomically (temp file + rename), so a failure leaves the previous
reports intact instead of a half-written or mixed set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.trace.compliance import render_compliance
from harness.trace.html_report import render_html
from harness.trace.index import write_text_atomic
from harness.trace.report import Trace

__all__ = ["RENDERERS", "REPORT_FILES", "write_outputs"]


def _render_json(trace: Trace) -> str:
    return trace.render()


RENDERERS: dict[str, Callable[[Trace], str]] = {
    "json": _render_json,
    "md": render_compliance,
    "html": render_html,
}
"""Output kind -> renderer."""

REPORT_FILES: dict[str, str] = {"json": "trace.json", "md": "COMPLIANCE.md", "html": "report.html"}
"""File names ``--orch-report-dir`` writes."""


def write_outputs(trace: Trace, targets: list[tuple[str, Path, str]]) -> None:
    """Write ``(kind, path, shown)`` targets; raises ``TraceFileError`` naming a failed file."""
    rendered = [(RENDERERS[kind](trace), path, shown) for kind, path, shown in targets]
    for text, path, shown in rendered:
        write_text_atomic(path, text, shown)
