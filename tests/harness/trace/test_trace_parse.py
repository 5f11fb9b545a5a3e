"""How the spec scanner reads Markdown: what is normative, where, and with which text."""

from __future__ import annotations

import hashlib

import pytest

from harness.trace.spec import Unanchored, parse_spec
from harness.trace.spec_lint import lint
from tests.harness.trace.trace_helpers import marker


def _parse(*lines: str) -> tuple[list[tuple[str, str, int, str, str]], list[Unanchored]]:
    parsed = parse_spec("\n".join(lines) + "\n", "s.md")
    assert parsed.errors == []
    reqs = [(r.id, r.level, r.line, r.section, r.text) for r in parsed.requirements]
    return reqs, parsed.unanchored


def _levels(*lines: str) -> list[str]:
    return [u.level for u in _parse(*lines)[1]]


@pytest.mark.parametrize(
    ("sentence", "level"),
    [
        ("The server MUST answer.", "MUST"),
        ("The server MUST NOT answer.", "MUST NOT"),
        ("The server SHOULD answer.", "SHOULD"),
        ("The server SHOULD NOT answer.", "SHOULD NOT"),
        ("The server MAY answer.", "MAY"),
        ("The server MAY answer, and MUST log it.", "MUST"),
        ("It SHOULD NOT retry, but MAY log.", "SHOULD NOT"),
        ("It MUST NOT stop, and MUST log.", "MUST NOT"),
    ],
)
def test_level_is_the_strongest_keyword(sentence: str, level: str) -> None:
    assert _levels(sentence) == [level]


def test_must_not_across_a_line_break() -> None:
    assert _levels("- The server MUST", "  NOT answer.") == ["MUST NOT"]


@pytest.mark.parametrize(
    "line",
    [
        "The server must answer (lowercase).",
        "MUSTARD and MAYBE are not keywords, nor is QUEUE_MAY_DROP.",
        "The kind `MUST` in code is not a keyword.",
        "A ``code span with ` and MUST`` inside.",
        "Hidden <!-- The server MUST answer. --> here.",
    ],
)
def test_not_normative(line: str) -> None:
    assert _parse("# T", "", line) == ([], [])


def test_fenced_code_and_multiline_comments_are_skipped() -> None:
    _, unanchored = _parse(
        "# T",
        "",
        "```markdown",
        "- The server MUST be ignored.",
        "```",
        "- item",
        "  ~~~~",
        "  The server MUST be ignored too.",
        "  ~~~~",
        "<!--",
        "The server MUST be ignored as well.",
        "-->",
        "The server MUST count.",
    )
    assert [(u.line, u.text) for u in unanchored] == [(13, "The server MUST count.")]


def test_a_fence_closes_only_with_the_same_character_and_enough_length() -> None:
    _, unanchored = _parse(
        "````",
        "```",
        "~~~~",
        "The server MUST be ignored.",
        "`````",
        "The server MUST count.",
    )
    assert [u.line for u in unanchored] == [6]


def test_sentences_are_split_at_sentence_ends_but_not_abbreviations() -> None:
    _, unanchored = _parse(
        "The server MUST answer, e.g. with `202`. It MAY log, i.e. write a line.",
        "Version 1.0 of the engine SHOULD be used! Is it? It MUST be so.",
    )
    assert [(u.line, u.col, u.level, u.text) for u in unanchored] == [
        (1, 0, "MUST", "The server MUST answer, e.g. with `202`."),
        (1, 41, "MAY", "It MAY log, i.e. write a line."),
        (2, 0, "SHOULD", "Version 1.0 of the engine SHOULD be used!"),
        (2, 49, "MUST", "It MUST be so."),
    ]


def test_section_is_the_innermost_heading() -> None:
    reqs, _ = _parse(
        f"{marker(1)}Before any heading it MUST work.",
        "# OrchQueue",
        "## 4 Tasks",
        "### 4.2 Admission ###",
        f"- {marker(2)}The server MUST answer 202.",
        "## 5   Stream",
        f"- {marker(3)}The server MUST stream.",
        "",
        "Setext heading",
        "--------------",
        f"{marker(4)}It MUST parse.",
    )
    assert [(r[0], r[3]) for r in reqs] == [
        ("ORCH-0001", ""),
        ("ORCH-0002", "4.2 Admission"),
        ("ORCH-0003", "5 Stream"),
        ("ORCH-0004", "Setext heading"),
    ]


def test_text_drops_the_marker_and_collapses_whitespace() -> None:
    reqs, _ = _parse(
        "# S",
        f"- {marker(1)}The server   MUST answer",
        "  with `202   Accepted`. The reason is informative.",
        '- <a id="ORCH-0002"></a> **ORCH-0002**: It MUST log.',
        "- **ORCH-0003** - It MUST log.",
        '- <a id="ORCH-0004"></a>It MUST log.',
        f"- The server, {marker(5)}in the middle, MUST cope.",
    )
    assert [(r[0], r[2], r[4]) for r in reqs] == [
        ("ORCH-0001", 2, "The server MUST answer with `202 Accepted`."),
        ("ORCH-0002", 4, "It MUST log."),
        ("ORCH-0003", 5, "It MUST log."),
        ("ORCH-0004", 6, "It MUST log."),
        ("ORCH-0005", 7, "The server, in the middle, MUST cope."),
    ]


def test_sha256_is_over_the_normalised_text() -> None:
    parsed = parse_spec(f"- {marker(1)}The server  MUST\n  answer.\n", "s.md")
    (req,) = parsed.requirements
    assert req.text == "The server MUST answer."
    assert req.sha256 == hashlib.sha256(b"The server MUST answer.").hexdigest()


def test_line_is_where_the_sentence_starts() -> None:
    reqs, unanchored = _parse(
        "# S",
        "",
        f"- {marker(1)}The server MUST",
        "  answer. It SHOULD",
        "  log.",
    )
    assert [(r[0], r[2]) for r in reqs] == [("ORCH-0001", 3)]
    assert [(u.line, u.col) for u in unanchored] == [(4, 10)]


def test_tables_blockquotes_and_nested_lists() -> None:
    _, unanchored = _parse(
        "| kind | rule |",
        "|---|---|",
        "| `A` | The server MUST answer 400. |",
        "",
        "> The server SHOULD quote.",
        "",
        "1. Outer item MAY be numbered.",
        "   - Inner item MUST be found.",
    )
    assert [(u.line, u.col, u.level) for u in unanchored] == [
        (3, 8, "MUST"),
        (5, 2, "SHOULD"),
        (7, 3, "MAY"),
        (8, 5, "MUST"),
    ]


def test_references_are_not_definitions() -> None:
    parsed = parse_spec(
        f"- {marker(1)}The server MUST a.\n- {marker(2)}It MUST b, as ORCH-0001 says.\n", "s.md"
    )
    assert lint(parsed) == []
    assert [r.id for r in parsed.requirements] == ["ORCH-0001", "ORCH-0002"]
    assert [(r.id, r.line) for r in parsed.references] == [("ORCH-0001", 2)]


def test_crlf_and_bom_do_not_disturb_lines() -> None:
    text = "\ufeff# S\r\n\r\n- " + marker(1) + "The server MUST a.\r\n- It MAY b.\r\n"
    parsed = parse_spec(text, "s.md")
    assert parsed.errors == []
    assert [(r.id, r.line, r.text) for r in parsed.requirements] == [
        ("ORCH-0001", 3, "The server MUST a.")
    ]
    assert [(u.line, u.text) for u in parsed.unanchored] == [(4, "It MAY b.")]


def test_other_anchors_and_bold_text_are_not_markers() -> None:
    reqs, unanchored = _parse(
        '<a id="orchestration-notes"></a>**Orchestration.** The server MUST a.',
        f"- {marker(1)}**Bold** words MUST stay in the text.",
    )
    assert [u.text for u in unanchored] == ["The server MUST a."]
    assert [r[4] for r in reqs] == ["**Bold** words MUST stay in the text."]
