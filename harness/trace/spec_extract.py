"""``orchq spec extract``: the requirements index a clean spec implies, and how it differs.

The index keeps every ID that ever existed (a removed one as a tombstone), records
the spec's path relative to the project root, and is rendered byte-stable, so
``--check`` compares bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.trace.index import LEVELS, ORCH, IdScheme, Index, Requirement
from harness.trace.index_file import parse_index, read_text_file, render_index
from harness.trace.spec import ParsedSpec, SpecLintError, parse_spec
from harness.trace.spec_lint import lint


def build_index(parsed: ParsedSpec, previous: Index | None, spec: str) -> Index:
    """The new index: the spec's requirements plus tombstones for every ID that left it."""
    reqs: dict[str, Requirement] = {r.id: r for r in parsed.requirements}
    if previous is not None:
        for old in previous.requirements.values():
            if old.id not in reqs:
                reqs[old.id] = old if old.deleted else replace(old, deleted=True)
    return Index.from_requirements(spec, reqs.values())


def index_root(index_path: Path) -> Path:
    """The directory the index's ``spec:`` is relative to: the nearest ancestor of the
    index holding ``pyproject.toml`` or ``.git`` (else the index directory's parent, the
    ``requirements/`` layout), so the value does not depend on where a command runs."""
    index_dir = index_path.resolve().parent
    for candidate in (index_dir, *index_dir.parents):
        if (candidate / "pyproject.toml").exists() or (candidate / ".git").exists():
            return candidate
    return index_dir.parent


def spec_reference(spec_path: Path, index_path: Path) -> str:
    """The spec's path as recorded in the index: POSIX, relative to :func:`index_root`."""
    return Path(os.path.relpath(spec_path.resolve(), index_root(index_path))).as_posix()


def recorded_spec(index_path: Path, index: Index) -> Path:
    """The spec an existing index was extracted from (its ``spec:``, see :func:`index_root`)."""
    return index_root(index_path) / index.spec


def diff_indexes(old: Index | None, new: Index) -> list[str]:
    """Human-readable differences, one line per changed ID (for ``--check``)."""
    if old is None:
        return [f"{r.id}: new" for r in new.requirements.values()]
    lines: list[str] = []
    if old.spec != new.spec:
        lines.append(f"spec: {old.spec} -> {new.spec}")
    ids = sorted(set(old.requirements) | set(new.requirements), key=lambda i: (len(i), i))
    for req_id in ids:
        before, after = old.requirements.get(req_id), new.requirements.get(req_id)
        if before is None:
            lines.append(f"{req_id}: new")
        elif after is None:  # pragma: no cover - build_index keeps every old ID
            lines.append(f"{req_id}: missing")
        elif before.deleted != after.deleted:
            lines.append(f"{req_id}: {'deleted' if after.deleted else 'restored'}")
        else:
            fields = [
                name
                for name in ("level", "section", "text", "line")
                if getattr(before, name) != getattr(after, name)
            ]
            if "line" in fields:
                fields[-1] = f"line {before.line} -> {after.line}"
            if fields:
                lines.append(f"{req_id}: changed {', '.join(fields)}")
    return lines


@dataclass(frozen=True)
class Extraction:
    """Result of :func:`extract`: the new index, its text, and how it differs from the file."""

    index: Index
    text: str
    previous_text: str | None
    differences: list[str]

    @property
    def stale(self) -> bool:
        """True when the index file would change (missing, different bytes)."""
        return self.previous_text != self.text


def extract(
    spec_path: Path,
    index_path: Path,
    *,
    spec_display: str | None = None,
    index_display: str | None = None,
    scheme: IdScheme = ORCH,
) -> Extraction:
    """Read and lint the spec, and build the index it implies; writes nothing.

    Raises :class:`TraceFileError` for an unreadable or missing spec or a
    malformed index, and :class:`SpecLintError` when the spec does not lint clean.
    """
    spec_shown = spec_display or str(spec_path)
    index_shown = index_display or str(index_path)
    text = read_text_file(spec_path, spec_shown, "spec")
    previous_text: str | None = None
    previous: Index | None = None
    if index_path.exists() or index_path.is_symlink():
        previous_text = read_text_file(index_path, index_shown, "requirements index")
        previous = parse_index(previous_text, index_shown, scheme)
    parsed = parse_spec(text, spec_shown, scheme)
    errors = lint(parsed, previous, index_path=index_shown)
    if errors:
        raise SpecLintError(errors)
    index = build_index(parsed, previous, spec_reference(spec_path, index_path))
    rendered = render_index(index)
    differences = diff_indexes(previous, index) if previous_text != rendered else []
    if previous_text is not None and previous_text != rendered and not differences:
        differences = ["layout differs from what `orchq spec extract` writes"]
    return Extraction(index, rendered, previous_text, differences)


def count_levels(requirements: Iterable[Requirement]) -> dict[str, int]:
    """Active requirements per level, in :data:`LEVELS` order."""
    counts = dict.fromkeys(LEVELS, 0)
    for r in requirements:
        if not r.deleted:
            counts[r.level] += 1
    return counts
