"""``orchq spec ids``: give every normative sentence without an ID the next free one.

Next free is one past the highest ID ever used, in the spec or the index's
tombstones, so an ID is never handed out twice; the spec is rewritten atomically,
and only when it lints clean apart from the missing IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.trace.index import ORCH, IdScheme, Index
from harness.trace.index_file import load_index_if_exists, read_text_file, write_text_atomic
from harness.trace.spec import MarkerEdit, ParsedSpec, SpecLintError, Unanchored, parse_spec
from harness.trace.spec_lint import lint
from harness.trace.spec_syntax import canonical_marker


@dataclass(frozen=True)
class IdAssignment:
    """Result of :func:`assign_ids`: the new spec text and what changed."""

    text: str
    assigned: list[str]
    """New IDs, in document order."""
    sentences: list[Unanchored]
    """The sentence each new ID went to (same order as ``assigned``)."""
    completed: list[str]
    """Existing IDs whose half marker was completed to the canonical form."""

    @property
    def changed(self) -> bool:
        return bool(self.assigned or self.completed)


def assign_ids(
    parsed: ParsedSpec, index: Index | None = None, *, index_path: str = "requirements/index.yaml"
) -> IdAssignment:
    """Give every un-anchored normative sentence the next free ID, in document order.

    Next free = 1 + the highest ID ever used, in the spec or in the index
    (tombstones included), so a deleted ID is never handed out again. Raises
    :class:`SpecLintError` for any problem other than missing IDs, since
    numbering a spec whose structure is broken would only bury the problem.
    """
    blocking = lint(parsed, index, require_ids=False, index_path=index_path)
    if blocking:
        raise SpecLintError(blocking)
    next_number = max(parsed.highest_number(), index.highest_number() if index else 0) + 1
    edits: list[MarkerEdit] = list(parsed.marker_fixes)
    completed = [e.replacement.split('"', 2)[1] for e in parsed.marker_fixes]
    assigned: list[str] = []
    for u in parsed.unanchored:
        req_id = parsed.scheme.format(next_number)
        next_number += 1
        assigned.append(req_id)
        edits.append(MarkerEdit(u.line, u.col, u.col, canonical_marker(req_id)))
    if not edits:
        return IdAssignment(_join(parsed, parsed.lines), [], [], [])
    lines = list(parsed.lines)
    for e in sorted(edits, key=lambda e: (e.line, e.start), reverse=True):
        old = lines[e.line - 1]
        lines[e.line - 1] = old[: e.start] + e.replacement + old[e.end :]
    return IdAssignment(_join(parsed, lines), assigned, list(parsed.unanchored), completed)


def _join(parsed: ParsedSpec, lines: list[str]) -> str:
    return ("\ufeff" if parsed.bom else "") + "\n".join(lines)


def run_ids(
    spec_path: Path,
    index_path: Path,
    *,
    spec_display: str | None = None,
    index_display: str | None = None,
    scheme: IdScheme = ORCH,
) -> IdAssignment:
    """File-level ``orchq spec ids``: assign IDs in place (atomically) when anything changes."""
    spec_shown = spec_display or str(spec_path)
    index_shown = index_display or str(index_path)
    text = read_text_file(spec_path, spec_shown, "spec")
    index = load_index_if_exists(index_path, index_shown, scheme)
    parsed = parse_spec(text, spec_shown, scheme)
    result = assign_ids(parsed, index, index_path=index_shown)
    if result.changed:
        check = parse_spec(result.text, spec_shown, scheme)
        problems = lint(check, index, index_path=index_shown)
        if problems:  # pragma: no cover - would be a bug in assign_ids
            raise SpecLintError(problems)
        write_text_atomic(spec_path, result.text, spec_shown)
    return result
