"""The verdict on a parsed spec: missing IDs, reused tombstones, limits without values, bad refs.

:func:`lint` adds to what the parser found on its own the checks that need the
previous index (an ID deleted once never comes back); errors are sorted by line.
"""

from __future__ import annotations

import re

from harness.trace.index import ORCH, IdScheme, Index
from harness.trace.spec import LintError, ParsedSpec, Reference

_LIMIT = re.compile(
    r"(?<!\bthat )(?<!\bthis )(?<!\bsame )"
    r"\b(?:limits?|maximum|minimum|at most|at least|up to|no more than|no longer than"
    r"|(?:longer|shorter|larger|smaller|more|fewer|greater|less) than|exceed(?:s|ing)?"
    r"|too (?:large|long|many|big)|bounds?)\b",
    re.IGNORECASE,
)
"""Words that name a limit; after "that", "this" or "the same" they refer back to one named."""
_LIMIT_VALUE = re.compile(
    r"\d|`[^`]+`|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|once|twice|table"
    r"|listed|given there)\b",
    re.IGNORECASE,
)
"""What states a limit's value: a number, a named key or field, or a table or list giving it."""
_LIMIT_WINDOW_WORDS = 8
_CLAUSE_END = re.compile(
    r"[;.]\s|,\s(?!\d)|\b(?:with|and|or|when|if|unless|while|then|MUST|SHOULD|MAY)\b"
)
"""Where the phrase after a limit word ends: its value must come before."""


def limit_without_value(text: str, scheme: IdScheme = ORCH) -> str | None:
    """The limit phrase of a normative sentence that does not say what the limit is, or None.

    A limit word must be followed, within a few words and before the clause ends,
    by its value: a number, an inline-code key or field (``queue_capacity``), a
    requirement ID whose sentence states it, or the table that lists it. "longer
    than the limit", "at most the maximum" say nothing an implementer could test.
    """
    for match in _LIMIT.finditer(text):
        clause = _CLAUSE_END.split(text[match.end() :], maxsplit=1)[0]
        window = " ".join(clause.split()[:_LIMIT_WINDOW_WORDS])
        if not _LIMIT_VALUE.search(scheme.like.sub("`id`", window)):
            return match.group(0)
    return None


def lint(
    parsed: ParsedSpec,
    index: Index | None = None,
    *,
    require_ids: bool = True,
    index_path: str = "requirements/index.yaml",
) -> list[LintError]:
    """All problems of a parsed spec, sorted by line.

    ``index`` (the previous ``requirements/index.yaml``) adds the tombstone
    check: an ID deleted once may never come back, because old test runs,
    reports and lock files still mean the *old* sentence by it.
    ``require_ids=False`` leaves out missing IDs (what ``spec ids`` fixes).
    """
    errors = list(parsed.errors)
    if require_ids:
        for u in parsed.unanchored:
            errors.append(
                LintError(
                    parsed.path,
                    u.line,
                    f"normative sentence ({u.level}) has no ID; run `orchq spec ids`",
                )
            )
    defined = parsed.defined_ids
    if index is not None:
        reported: set[str] = set()
        for req in parsed.requirements:
            if index.is_tombstone(req.id) and req.id not in reported:
                reported.add(req.id)
                errors.append(
                    LintError(
                        parsed.path,
                        req.line,
                        f"{req.id} is a deleted requirement (tombstone in {index_path}) and "
                        "cannot be reused; remove the marker and run `orchq spec ids`",
                    )
                )
    for req in parsed.requirements:
        phrase = limit_without_value(req.text, parsed.scheme)
        if phrase is not None:
            errors.append(
                LintError(
                    parsed.path,
                    req.line,
                    f"{req.id} names a limit ({phrase!r}) without its value: state the number, "
                    "or the configuration key or field that sets it",
                )
            )
    seen: set[Reference] = set()
    for ref in parsed.references:
        if ref.id in defined or ref in seen:
            continue
        seen.add(ref)  # ``[ORCH-0009](#ORCH-0009)`` is one reference, not two
        if index is not None and index.is_tombstone(ref.id):
            errors.append(LintError(parsed.path, ref.line, f"reference to deleted {ref.id}"))
        else:
            errors.append(LintError(parsed.path, ref.line, f"reference to undefined {ref.id}"))
    errors.sort(key=lambda e: e.line)
    return errors
