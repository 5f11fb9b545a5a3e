"""Parse the normative Markdown spec into requirements, references and half markers.

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
sentences (:mod:`harness.trace.spec_syntax`). Lint, ID assignment and extraction
are :mod:`~harness.trace.spec_lint`, :mod:`~harness.trace.spec_ids` and
:mod:`~harness.trace.spec_extract`.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field

from harness.trace.index import ORCH, IdScheme, Requirement, normalise_text
from harness.trace.spec_syntax import (
    CELL_SPLIT,
    FENCE_OPEN,
    HEADING,
    KEYWORD_LIST,
    LIST_ITEM,
    MARKER,
    QUOTE,
    SEPARATOR,
    SETEXT,
    THEMATIC,
    canonical_marker,
    id_tokens,
    mask_code,
    might_matter,
    sentence_level,
    sentence_spans,
)

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
class MarkerEdit:
    line: int
    start: int
    end: int
    replacement: str


@dataclass(frozen=True)
class Reference:
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
    references: list[Reference] = field(default_factory=list)
    marker_fixes: list[MarkerEdit] = field(default_factory=list)
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
                m = FENCE_OPEN.fullmatch(line)
                if m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    self._flush(block)
                    block = None
                    paragraph = False
                    fence = (m.group(1)[0], len(m.group(1)), lineno)
                    continue
            elif first == ">":
                q = QUOTE.match(line)
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
                h = HEADING.fullmatch(line)
                if h is not None:
                    self._flush(block)
                    block = None
                    paragraph = False
                    self._heading(h.group(2) or "", lineno)
                    continue
            if first in "=-*_" and indent <= 3:
                if SETEXT.fullmatch(line) is not None and block is not None and paragraph:
                    self._setext(block)
                    block = None
                    paragraph = False
                    continue
                if THEMATIC.fullmatch(line) is not None:
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
                li = LIST_ITEM.match(line)
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
        self._check_heading_ids(mask_code(text), lineno)
        self.section = normalise_text(text)

    def _setext(self, block: _Block) -> None:
        text = "".join(block.parts)
        self._check_heading_ids(mask_code(text), block.lines[0])
        self.section = normalise_text(text)

    def _check_heading_ids(self, masked: str, lineno: int) -> None:
        if self.needle not in masked.lower():
            return
        defs: set[int] = set()
        for m in MARKER.finditer(masked):
            token = self._marker_id(m)
            if token is None:
                continue
            defs.update(range(m.start(), m.end()))
            if self.scheme.is_valid(token):
                self.error(lineno, f"{token} is in a heading; IDs belong to normative sentences")
            else:
                self.error(lineno, self.scheme.malformed(token))
        for m in id_tokens(masked, self.scheme, self.needle):
            if m.start() in defs:
                continue
            if self.scheme.is_valid(m.group()):
                self.result.references.append(Reference(m.group(), lineno))
            else:
                self.error(lineno, self.scheme.malformed(m.group()))

    def _table_row(self, line: str, lineno: int, col: int) -> None:
        pos = 0
        for m in CELL_SPLIT.finditer(line):
            self._cell(line, pos, m.start(), lineno, col)
            pos = m.end()
        self._cell(line, pos, len(line), lineno, col)

    def _cell(self, line: str, start: int, end: int, lineno: int, col: int) -> None:
        cell = line[start:end]
        stripped = cell.strip()
        if not stripped or not might_matter(stripped, self.needle):
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
        if not might_matter(text, self.needle):
            return
        masked = mask_code(text)
        for start, end in sentence_spans(masked):
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
        if not might_matter(sentence, self.needle):
            return
        defs: list[tuple[str, int, int]] = []  # (id, start, end) relative to the sentence
        for m in MARKER.finditer(sentence):
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
        for m in id_tokens(rest, self.scheme, self.needle):
            line = block.locate(start + m.start())[1]
            if self.scheme.is_valid(m.group()):
                self.result.references.append(Reference(m.group(), line))
            else:
                self.error(line, self.scheme.malformed(m.group()))
        level = sentence_level(rest)
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
            sep = SEPARATOR.match(sentence, e)
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
        sep = SEPARATOR.match(sentence, end)
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
            self.result.marker_fixes.append(MarkerEdit(line, col, col + stop, canonical))


def parse_spec(
    text: str, path: str = "specs/orchestrator-spec.md", scheme: IdScheme = ORCH
) -> ParsedSpec:
    """Scan spec ``text`` (``path`` is only used in messages) in one linear pass; IDs are
    those of ``scheme`` (the project's prefix)."""
    return _Parser(text, path, scheme).run()
