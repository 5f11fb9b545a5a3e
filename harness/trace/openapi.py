"""Requirement IDs declared on OpenAPI operations (``x-req-id``), for the reports.

Each operation object of ``contracts/openapi/orchqueue.yaml`` may carry
``x-req-id: ["ORCH-0001", ...]``; the reports list, per requirement, the
operations behind it as ``"METHOD /path"``. A missing OpenAPI file means no
operations (a user's project need not have one); a file that exists but is
broken, or cites a malformed, unknown or deleted ID, is a configuration error
(one line naming the file, exit code 7), because a report silently missing
operations would be wrong without anyone noticing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.trace.index import Index, TraceFileError, is_any_id
from harness.trace.index_file import read_text_file

__all__ = ["load_operations", "operations_by_requirement"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations_by_requirement(data: Any, index: Index, display: str) -> dict[str, list[str]]:
    """``{requirement ID: sorted ["METHOD /path", ...]}`` from a loaded OpenAPI document."""

    def bad(message: str) -> TraceFileError:
        return TraceFileError(display, f"bad x-req-id: {message}")

    if not isinstance(data, Mapping):
        raise TraceFileError(display, "malformed OpenAPI document: the top level must be a mapping")
    paths = data.get("paths", {})
    if not isinstance(paths, Mapping):
        raise TraceFileError(display, "malformed OpenAPI document: paths must be a mapping")
    result: dict[str, set[str]] = {}
    for path, item in paths.items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping) or "x-req-id" not in operation:
                continue
            name = f"{method.upper()} {path}"
            ids = operation["x-req-id"]
            if not isinstance(ids, list) or not ids:
                raise bad(f"{name}: x-req-id must be a non-empty list of requirement IDs")
            for req_id in ids:
                if not isinstance(req_id, str) or not is_any_id(req_id):
                    raise bad(f"{name}: malformed requirement ID {req_id!r}")
                if req_id not in index:
                    raise bad(f"{name}: unknown requirement ID {req_id}")
                if index.is_tombstone(req_id):
                    raise bad(f"{name}: requirement ID {req_id} was deleted")
                result.setdefault(req_id, set()).add(name)
    return {req_id: sorted(names) for req_id, names in result.items()}


def load_operations(path: Path, display: str, index: Index) -> dict[str, list[str]] | None:
    """The operations per requirement, or ``None`` when the OpenAPI file does not exist."""
    if not path.exists() and not path.is_symlink():
        return None
    text = read_text_file(path, display, "OpenAPI document")
    import yaml  # lazily

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise TraceFileError(
            display,
            f"malformed OpenAPI document: invalid YAML: {problem}",
            mark.line + 1 if mark else None,
        ) from None
    return operations_by_requirement(data, index, display)
