"""Writing the report files of one :class:`~harness.trace.report.Trace`, shared by plugin and CLI.

Every text is rendered before the first file is touched, and each file is
replaced atomically (temp file + rename), so a failure leaves the previous
reports intact instead of a half-written or mixed set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harness.trace.compliance import render_compliance
from harness.trace.html_report import render_html
from harness.trace.index_file import write_text_atomic
from harness.trace.report import Trace

__all__ = ["RENDERERS", "REPORT_FILES", "link_base", "write_outputs"]


def _render_json(trace: Trace, link_base: str) -> str:
    return trace.render()


RENDERERS: dict[str, Callable[[Trace, str], str]] = {
    "json": _render_json,
    "md": render_compliance,
    "html": render_html,
}
"""Output kind -> renderer of the trace, given the path from the output's folder to the
project root (``../``), the base of its links to the spec and the test files."""

REPORT_FILES: dict[str, str] = {"json": "trace.json", "md": "COMPLIANCE.md", "html": "report.html"}
"""File names ``--orch-report-dir`` writes."""


def link_base(root: Path | None, output: Path) -> str:
    """The relative path from ``output``'s folder to ``root`` (``""``, ``"../"``, ...)."""
    if root is None:
        return ""
    try:
        relative = os.path.relpath(root.resolve(), output.resolve().parent)
    except ValueError:  # another drive on Windows
        return ""
    return "" if relative == "." else Path(relative).as_posix() + "/"


def write_outputs(
    trace: Trace, targets: list[tuple[str, Path, str]], *, root: Path | None = None
) -> None:
    """Write ``(kind, path, shown)`` targets; raises ``TraceFileError`` naming a failed file.

    ``root`` is the folder the trace's paths are relative to (the rootdir): reports
    link to the spec and the test files relative to where they are written.
    """
    rendered = [
        (RENDERERS[kind](trace, link_base(root, path)), path, shown)
        for kind, path, shown in targets
    ]
    for text, path, shown in rendered:
        write_text_atomic(path, text, shown)
