"""The spec's Markdown syntax: line and inline patterns, code masking, sentence splitting.

Pure functions over one string each, shared by the parser (:mod:`harness.trace.spec`)
and the ID writer (:mod:`harness.trace.spec_ids`). Inline code is masked to the same
length before any scan, so offsets in the masked text are offsets in the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from harness.trace.index import IdScheme

KEYWORD_LIST = "MUST, MUST NOT, SHOULD, SHOULD NOT, MAY"
_RANK = {"MUST": 0, "MUST NOT": 0, "SHOULD": 1, "SHOULD NOT": 1, "MAY": 2}

# ---------------------------------------------------------------- line-level syntax

FENCE_OPEN = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)")
HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
SETEXT = re.compile(r" {0,3}(=+|-{2,})[ \t]*")
THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
LIST_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
QUOTE = re.compile(r"(?:[ \t]{0,3}>[ \t]?)+")
CELL_SPLIT = re.compile(r"(?<!\\)\|")

# ---------------------------------------------------------------- inline syntax

_BOUNDARY = re.compile(r"[.!?][)\]\"'\u2019\u201d*_`]*(?=\s+[^\sa-z])")
_ABBREV_BEFORE = re.compile(r"(?<![A-Za-z.])(?:e\.g|i\.e|cf|vs|viz|approx|incl|resp|al)$", re.I)
_KEYWORD = re.compile(r"\b(?:(MUST|SHOULD)(?:\s+(NOT))?|(MAY))\b")
MARKER = re.compile(
    r'<a\s+(?:id|name)\s*=\s*"(?P<aid>[^"]*)"\s*>\s*</a>(?:[ \t]*\*\*(?P<alabel>[^*\n]*)\*\*)?'
    r"|\*\*(?P<label>[^*\n]*)\*\*"
)
SEPARATOR = re.compile(r"[ \t]*(?:\u2014|\u2013|--?|:)(?=\s|$)")
"""What may follow a marker: an em dash (canonical), an en dash, ``-``, ``--`` or ``:``."""
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def canonical_marker(req_id: str) -> str:
    """The marker ``orchq spec ids`` writes in front of a normative sentence."""
    return f'<a id="{req_id}"></a>**{req_id}** — '


def mask_code(text: str) -> str:
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


def might_matter(text: str, needle: str) -> bool:
    """Cheap pre-filter: could ``text`` hold a keyword or an ID (well-formed or not)?

    ``needle`` is the ID prefix without its first letter, lowercase (``rch``).
    """
    return "MUST" in text or "SHOULD" in text or "MAY" in text or needle in text.lower()


def id_tokens(text: str, scheme: IdScheme, needle: str) -> Iterator[re.Match[str]]:
    """ID-like tokens that stand alone (not the tail of a longer word such as ``XORCH-1``).

    The left-boundary test is done here rather than as a regex look-behind,
    which would defeat the regex engine's first-character scan and triple the cost.
    """
    if needle not in text.lower():
        return
    for m in scheme.like.finditer(text):
        if m.start() == 0 or text[m.start() - 1] not in _WORD_CHARS:
            yield m


def sentence_spans(masked: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BOUNDARY.finditer(masked):
        if masked[m.start()] == "." and _ABBREV_BEFORE.search(masked, start, m.start()):
            continue
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(masked)))
    return spans


def sentence_level(text: str) -> str | None:
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
