"""Parse the normative Markdown spec: requirements, lint, ID assignment and extraction.

The spec is plain GitHub Markdown. A *normative sentence* is a sentence that
contains an uppercase RFC 2119 keyword (``MUST``, ``MUST NOT``, ``SHOULD``,
``SHOULD NOT``, ``MAY``) outside inline code. Each one carries exactly one ID,
written as a marker at the start of the sentence::

    - <a id="ORCH-0012"></a>**ORCH-0012** — The server MUST answer 202.

The ``<a id>`` makes ``specs/orchestrator-spec.md#ORCH-0012`` a stable link on
GitHub; the bold label makes the ID visible when reading. A bare bold label or a
bare anchor is also understood as a marker (``orchq spec ids`` completes it);
any other mention of an ID (``see ORCH-0012``, ``[ORCH-0012](#ORCH-0012)``) is
a reference, which must name a requirement that exists.

Scanning is one linear pass over the lines (compiled regexes, no re-scans):
fenced code blocks and HTML comments are skipped, headings set the section,
paragraphs, list items and table cells become blocks, and blocks are split into
sentences at ``.``/``!``/``?`` followed by whitespace and a non-lowercase
character (common abbreviations such as ``e.g.`` excepted).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.trace.index import (
    LEVELS,
    ORCH,
    IdScheme,
    Index,
    Requirement,
    TraceFileError,
    load_index_if_exists,
    normalise_text,
    parse_index,
    read_text_file,
    render_index,
    write_text_atomic,
)

__all__ = [
    "Extraction",
    "IdAssignment",
    "LintError",
    "ParsedSpec",
    "SpecLintError",
    "TraceFileError",
    "Unanchored",
    "assign_ids",
    "build_index",
    "canonical_marker",
    "count_levels",
    "diff_indexes",
    "extract",
    "index_root",
    "limit_without_value",
    "lint",
    "parse_spec",
    "recorded_spec",
    "run_ids",
    "spec_reference",
]


KEYWORD_LIST = "MUST, MUST NOT, SHOULD, SHOULD NOT, MAY"
_RANK = {"MUST": 0, "MUST NOT": 0, "SHOULD": 1, "SHOULD NOT": 1, "MAY": 2}

# ---------------------------------------------------------------- line-level syntax

_FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")
_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_QUOTE = re.compile(r"(?:[ \t]{0,3}>[ \t]?)+")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")

# ---------------------------------------------------------------- inline syntax

_BOUNDARY = re.compile(r"[.!?][)\]\"'\u2019\u201d*_`]*(?=\s+[^\sa-z])")
_ABBREV_BEFORE = re.compile(r"(?<![A-Za-z.])(?:e\.g|i\.e|cf|vs|viz|approx|incl|resp|al)$", re.I)
_KEYWORD = re.compile(r"\b(?:(MUST|SHOULD)(?:\s+(NOT))?|(MAY))\b")
_MARKER = re.compile(
    r'<a\s+(?:id|name)\s*=\s*"(?P<aid>[^"]*)"\s*>\s*</a>(?:[ \t]*\*\*(?P<alabel>[^*\n]*)\*\*)?'
    r"|\*\*(?P<label>[^*\n]*)\*\*"
)
_SEPARATOR = re.compile(r"[ \t]*(?:\u2014|\u2013|--?|:)(?=\s|$)")
"""What may follow a marker: an em dash (canonical), an en dash, ``-``, ``--`` or ``:``."""
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def canonical_marker(req_id: str) -> str:
    """The marker ``orchq spec ids`` writes in front of a normative sentence."""
    return f'<a id="{req_id}"></a>**{req_id}** — '


# ---------------------------------------------------------------- results


@dataclass(frozen=True, order=True)
class LintError:
    """One problem in the spec, printed as ``file:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SpecLintError(Exception):
    """Raised by the file-level operations when the spec does not lint clean."""

    def __init__(self, errors: list[LintError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class Unanchored:
    """A normative sentence without an ID: where ``orchq spec ids`` inserts one."""

    line: int
    col: int
    level: str
    text: str


@dataclass(frozen=True)
class _Edit:
    line: int
    start: int
    end: int
    replacement: str


@dataclass(frozen=True)
class _Ref:
    id: str
    line: int


@dataclass
class ParsedSpec:
    """Everything one pass over the spec found; see :func:`lint` for the verdict."""

    path: str
    requirements: list[Requirement] = field(default_factory=list)
    """Anchored normative sentences in document order (IDs as written, even if malformed)."""
    errors: list[LintError] = field(default_factory=list)
    """Problems visible from the spec alone, except missing IDs (see ``unanchored``)."""
    unanchored: list[Unanchored] = field(default_factory=list)
    references: list[_Ref] = field(default_factory=list)
    marker_fixes: list[_Edit] = field(default_factory=list)
    """Half markers (bare anchor or bare label) at a sentence start, to be completed."""
    lines: list[str] = field(default_factory=list)
    bom: bool = False
    scheme: IdScheme = ORCH
    """The project's ID scheme the spec was parsed with."""

    @property
    def defined_ids(self) -> set[str]:
        return {r.id for r in self.requirements}

    def highest_number(self) -> int:
        scheme = self.scheme
        return max(
            (scheme.number(r.id) for r in self.requirements if scheme.is_valid(r.id)), default=0
        )


# ---------------------------------------------------------------- parsing


class _Block:
    """Text of one paragraph, list item or table cell, with a map back to lines."""

    __slots__ = ("cols", "lengths", "lines", "offsets", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offsets: list[int] = []
        self.lines: list[int] = []
        self.cols: list[int] = []
        self.lengths: list[int] = []
        self.size = 0

    def add(self, text: str, line: int, col: int) -> None:
        if self.parts:
            self.parts.append("\n")
            self.size += 1
        self.offsets.append(self.size)
        self.lines.append(line)
        self.cols.append(col)
        self.lengths.append(len(text))
        self.parts.append(text)
        self.size += len(text)

    def locate(self, offset: int) -> tuple[int, int, int]:
        """``(segment, line, col)`` of a character offset in the joined text."""
        i = bisect.bisect_right(self.offsets, offset) - 1
        return i, self.lines[i], self.cols[i] + offset - self.offsets[i]


def _mask_code(text: str) -> str:
    """Blank out inline code contents (same length) so keywords, IDs and
    periods inside backticks are invisible to the scanners.

    CommonMark code spans: a run of N backticks up to the next run of exactly
    N backticks; an unmatched run is literal. A hand-written scan with
    ``str.find`` is three times faster here than the equivalent regex.
    """
    if "`" not in text:
        return text
    out: list[str] = []
    pos = 0
    n = len(text)
    i = text.find("`")
    while i >= 0:
        j = i + 1
        while j < n and text[j] == "`":
            j += 1
        fence = text[i:j]
        run = j - i
        k = text.find(fence, j)
        while k >= 0 and k + run < n and text[k + run] == "`":
            m = k + run
            while m < n and text[m] == "`":
                m += 1
            k = text.find(fence, m)
        if k < 0:
            i = text.find("`", j)
            continue
        out.append(text[pos:j])
        out.append("x" * (k - j))
        pos = k
        i = text.find("`", k + run)
    out.append(text[pos:])
    return "".join(out)


def _might_matter(text: str, needle: str) -> bool:
    """Cheap pre-filter: could ``text`` hold a keyword or an ID (well-formed or not)?

    ``needle`` is the ID prefix without its first letter, lowercase (``rch``).
    """
    return "MUST" in text or "SHOULD" in text or "MAY" in text or needle in text.lower()


def _id_tokens(text: str, scheme: IdScheme, needle: str) -> Iterator[re.Match[str]]:
    """ID-like tokens that stand alone (not the tail of a longer word such as ``XORCH-1``).

    The left-boundary test is done here rather than as a regex look-behind,
    which would defeat the regex engine's first-character scan and triple the cost.
    """
    if needle not in text.lower():
        return
    for m in scheme.like.finditer(text):
        if m.start() == 0 or text[m.start() - 1] not in _WORD_CHARS:
            yield m


def _sentence_spans(masked: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(masked):
        if masked[m.start()] == "." and _ABBREV_BEFORE.search(masked, start, m.start()):
            continue
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(masked)))
    return spans


def _level(text: str) -> str | None:
    """The strongest keyword of a sentence (the first one among equals)."""
    best: str | None = None
    pos = 0
    while True:
        m = _KEYWORD.search(text, pos)
        if m is None:
            return best
        level = m.group(3) or (f"{m.group(1)} NOT" if m.group(2) else m.group(1))
        if best is None or _RANK[level] < _RANK[best]:
            best = level
            if _RANK[level] == 0:
                return best  # nothing is stronger than MUST / MUST NOT
        pos = m.end()


class _Parser:
    def __init__(self, text: str, path: str, scheme: IdScheme) -> None:
        self.path = path
        self.scheme = scheme
        self.needle = scheme.prefix[1:].lower() or scheme.prefix.lower()
        self.result = ParsedSpec(path=path, scheme=scheme)
        if text.startswith("\ufeff"):
            self.result.bom = True
            text = text[1:]
        self.result.lines = text.split("\n")
        self.section = ""
        self.first_seen: dict[str, int] = {}

    def error(self, line: int, message: str) -> None:
        self.result.errors.append(LintError(self.path, line, message))

    # -- line pass ---------------------------------------------------

    def run(self) -> ParsedSpec:
        block: _Block | None = None
        paragraph = False  # the open block is a paragraph (may become a setext heading)
        fence: tuple[str, int, int] | None = None  # (char, length, opening line)
        comment_open: int | None = None  # line of an unclosed "<!--"

        for lineno, raw in enumerate(self.result.lines, 1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if fence is not None:
                stripped = line.strip()
                if (
                    stripped
                    and stripped[0] == fence[0]
                    and len(stripped) >= fence[1]
                    and stripped == stripped[0] * len(stripped)
                ):
                    fence = None
                continue
            if comment_open is not None or "<!--" in line:
                line, comment_open = self._mask_comments(line, lineno, comment_open)
            body = line.lstrip()
            if not body:
                self._flush(block)
                block = None
                paragraph = False
                continue
            # Dispatch on the first visible character: one regex per line at most.
            first = body[0]
            col = 0
            if first in "`~":
                m = _FENCE_OPEN.fullmatch(line)
                if m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    self._flush(block)
                    block = None
                    paragraph = False
                    fence = (m.group(1)[0], len(m.group(1)), lineno)
                    continue
            elif first == ">":
                q = _QUOTE.match(line)
                if q is not None and q.end() > 0:
                    col = q.end()
                    line = line[col:]
                    body = line.lstrip()
                    if not body:
                        self._flush(block)
                        block = None
                        paragraph = False
                        continue
                    first = body[0]
            indent = len(line) - len(body)
            if first == "#" and indent <= 3:
                h = _HEADING.fullmatch(line)
                if h is not None:
                    self._flush(block)
                    block = None
                    paragraph = False
                    self._heading(h.group(2) or "", lineno)
                    continue
            if first in "=-*_" and indent <= 3:
                if _SETEXT.fullmatch(line) is not None and block is not None and paragraph:
                    self._setext(block)
                    block = None
                    paragraph = False
                    continue
                if _THEMATIC.fullmatch(line) is not None:
                    self._flush(block)
                    block = None
                    paragraph = False
                    continue
            if first == "|" and indent <= 3:
                self._flush(block)
                block = None
                paragraph = False
                self._table_row(line, lineno, col)
                continue
            if first in "-*+" or first.isdigit():
                li = _LIST_ITEM.match(line)
                if li is not None:
                    self._flush(block)
                    block = _Block()
                    block.add(line[li.end() :], lineno, col + li.end())
                    paragraph = False
                    continue
            if block is None:
                block = _Block()
                paragraph = True
            block.add(body, lineno, col + indent)

        self._flush(block)
        if fence is not None:
            marker = fence[0] * fence[1]
            self.error(fence[2], f"unclosed code fence ({marker}) opened here")
        if comment_open is not None:
            self.error(comment_open, "unclosed HTML comment (<!--) opened here")
        self.result.errors.sort(key=lambda e: e.line)
        return self.result

    @staticmethod
    def _mask_comments(line: str, lineno: int, open_at: int | None) -> tuple[str, int | None]:
        """Replace HTML comment text with spaces (same length, so columns stay true)."""
        out: list[str] = []
        pos = 0
        while pos < len(line):
            if open_at is not None:
                end = line.find("-->", pos)
                if end < 0:
                    out.append(" " * (len(line) - pos))
                    pos = len(line)
                    break
                out.append(" " * (end + 3 - pos))
                pos = end + 3
                open_at = None
            else:
                start = line.find("<!--", pos)
                if start < 0:
                    out.append(line[pos:])
                    break
                out.append(line[pos:start])
                pos = start
                open_at = lineno
        return "".join(out), open_at

    def _heading(self, text: str, lineno: int) -> None:
        self._check_heading_ids(_mask_code(text), lineno)
        self.section = normalise_text(text)

    def _setext(self, block: _Block) -> None:
        text = "".join(block.parts)
        self._check_heading_ids(_mask_code(text), block.lines[0])
        self.section = normalise_text(text)

    def _check_heading_ids(self, masked: str, lineno: int) -> None:
        if self.needle not in masked.lower():
            return
        defs: set[int] = set()
        for m in _MARKER.finditer(masked):
            token = self._marker_id(m)
            if token is None:
                continue
            defs.update(range(m.start(), m.end()))
            if self.scheme.is_valid(token):
                self.error(lineno, f"{token} is in a heading; IDs belong to normative sentences")
            else:
                self.error(lineno, self.scheme.malformed(token))
        for m in _id_tokens(masked, self.scheme, self.needle):
            if m.start() in defs:
                continue
            if self.scheme.is_valid(m.group()):
                self.result.references.append(_Ref(m.group(), lineno))
            else:
                self.error(lineno, self.scheme.malformed(m.group()))

    def _table_row(self, line: str, lineno: int, col: int) -> None:
        pos = 0
        for m in _CELL_SPLIT.finditer(line):
            self._cell(line, pos, m.start(), lineno, col)
            pos = m.end()
        self._cell(line, pos, len(line), lineno, col)

    def _cell(self, line: str, start: int, end: int, lineno: int, col: int) -> None:
        cell = line[start:end]
        stripped = cell.strip()
        if not stripped or not _might_matter(stripped, self.needle):
            return
        block = _Block()
        block.add(stripped, lineno, col + start + cell.index(stripped))
        self._flush(block)

    # -- blocks and sentences ----------------------------------------

    def _flush(self, block: _Block | None) -> None:
        """Split a finished block into sentences and classify each one."""
        if block is None:
            return
        text = "".join(block.parts)
        if not _might_matter(text, self.needle):
            return
        masked = _mask_code(text)
        for start, end in _sentence_spans(masked):
            while start < end and masked[start].isspace():
                start += 1
            if start < end:
                self._sentence(block, text, masked, start, end)

    def _marker_id(self, m: re.Match[str]) -> str | None:
        """The ID a marker match defines, or None when the match is not a requirement marker."""
        aid = m.group("aid")
        if aid is not None:  # other anchors (sections, notes) are not ours
            ours = self.scheme.like_full.fullmatch(aid)
        else:
            ours = self.scheme.like_full.fullmatch(m.group("label"))
        return ours.group(1) if ours is not None else None

    def _sentence(self, block: _Block, text: str, masked: str, start: int, end: int) -> None:
        sentence = masked[start:end]
        if not _might_matter(sentence, self.needle):
            return
        defs: list[tuple[str, int, int]] = []  # (id, start, end) relative to the sentence
        for m in _MARKER.finditer(sentence):
            token = self._marker_id(m)
            if token is None:
                continue
            line = block.locate(start + m.start())[1]
            alabel = m.group("alabel")
            if m.group("aid") is not None and alabel is not None:
                label = self.scheme.like_full.fullmatch(alabel)
                if label is not None and label.group(1) != token:
                    self.error(line, f"anchor {token} and label {label.group(1)} disagree")
            if not self.scheme.is_valid(token):
                self.error(line, self.scheme.malformed(token))
            defs.append((token, m.start(), m.end()))

        # Keywords and references are looked for with the markers blanked out.
        rest = sentence
        for _, s, e in defs:
            rest = rest[:s] + " " * (e - s) + rest[e:]
        for m in _id_tokens(rest, self.scheme, self.needle):
            line = block.locate(start + m.start())[1]
            if self.scheme.is_valid(m.group()):
                self.result.references.append(_Ref(m.group(), line))
            else:
                self.error(line, self.scheme.malformed(m.group()))
        level = _level(rest)
        seg, line, col = block.locate(start)

        if not defs:
            if level is not None:
                body = normalise_text(text[start:end])
                self.result.unanchored.append(Unanchored(line, col, level, body))
            return
        if level is None:
            for token, s, _ in defs:
                at = block.locate(start + s)[1]
                self.error(
                    at, f"{token} marks a sentence with no normative keyword ({KEYWORD_LIST})"
                )
            return
        if len(defs) > 1:
            at = block.locate(start + defs[1][1])[1]
            names = ", ".join(d[0] for d in defs)
            self.error(at, f"more than one ID in one sentence: {names}")

        # Text: the original sentence without its markers (and the separator after each).
        pieces: list[str] = []
        pos = 0
        for _, s, e in defs:
            pieces.append(text[start + pos : start + s])
            sep = _SEPARATOR.match(sentence, e)
            pos = sep.end() if sep is not None else e
        pieces.append(text[start + pos : end])
        body = normalise_text("".join(pieces))
        token = defs[0][0]
        self.result.requirements.append(
            Requirement(
                id=token,
                level=level,
                section=self.section,
                text=body,
                sha256=hashlib.sha256(body.encode("utf-8")).hexdigest(),
                line=line,
            )
        )
        if self.scheme.is_valid(token):
            first = self.first_seen.get(token)
            if first is not None:
                self.error(line, f"duplicate ID {token} (first defined at line {first})")
            else:
                self.first_seen[token] = line
            if defs[0][1] == 0 and len(defs) == 1:
                self._maybe_fix_marker(block, sentence, start, defs[0], (seg, line, col))

    def _maybe_fix_marker(
        self,
        block: _Block,
        sentence: str,
        start: int,
        marker: tuple[str, int, int],
        where: tuple[int, int, int],
    ) -> None:
        """Complete a half marker at the start of a sentence to the canonical form."""
        token, _, end = marker
        if sentence.startswith(canonical_marker(token)):
            return
        seg, line, col = where
        sep = _SEPARATOR.match(sentence, end)
        stop = sep.end() if sep is not None else end
        while stop < len(sentence) and sentence[stop] in " \t":
            stop += 1
        seg_end = block.offsets[seg] + block.lengths[seg]
        if start + stop > seg_end:
            return  # the marker runs over a line break: leave it alone
        canonical = canonical_marker(token)
        if start + stop == seg_end:
            canonical = canonical.rstrip()
        if sentence[:stop] != canonical:
            self.result.marker_fixes.append(_Edit(line, col, col + stop, canonical))


def parse_spec(
    text: str, path: str = "specs/orchestrator-spec.md", scheme: IdScheme = ORCH
) -> ParsedSpec:
    """Scan spec ``text`` (``path`` is only used in messages) in one linear pass; IDs are
    those of ``scheme`` (the project's prefix)."""
    return _Parser(text, path, scheme).run()


# ---------------------------------------------------------------- lint

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
    seen: set[_Ref] = set()
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


# ---------------------------------------------------------------- ids


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
    edits: list[_Edit] = list(parsed.marker_fixes)
    completed = [e.replacement.split('"', 2)[1] for e in parsed.marker_fixes]
    assigned: list[str] = []
    for u in parsed.unanchored:
        req_id = parsed.scheme.format(next_number)
        next_number += 1
        assigned.append(req_id)
        edits.append(_Edit(u.line, u.col, u.col, canonical_marker(req_id)))
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


# ---------------------------------------------------------------- extract


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
