"""Properties of the scanner and of ``assign_ids`` over random Markdown-ish documents.

The fragments are chosen to collide: markers next to code spans, fences and
comments opening mid-document, tables, quotes, abbreviations, half markers. For
any such document the scanner never raises, and numbering is a fixed point:
once ``assign_ids`` succeeds, its output lints clean and numbering it again
changes nothing, which is what makes ``orchq spec ids`` safe to run anywhere.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.trace.spec import SpecLintError, parse_spec
from harness.trace.spec_ids import assign_ids
from harness.trace.spec_lint import lint
from tests.harness.trace.trace_helpers import marker

FRAGMENTS = [
    "The server MUST answer.",
    "It MUST NOT fail",
    "clients SHOULD retry, e.g. after `Retry-After`.",
    "It MAY log. It SHOULD NOT crash!",
    "plain prose.",
    "`MUST` in code",
    "``a ` MUST``",
    "**Note.**",
    "**ORCH-0007** — It MUST work.",
    '<a id="ORCH-0008"></a>It MUST work.',
    marker(3) + "The server MUST be numbered.",
    marker(4),
    "see ORCH-0003.",
    "e.g.",
    "i.e. MUST",
    " — ",
    "<!-- MUST hidden -->",
    "<!--",
    "-->",
    "|",
    "\t",
    "  ",
    ".",
    "?",
]

LINE_STARTS = ["", "- ", "  ", "1. ", "> ", "| ", "# ", "## 2 S ", "```", "~~~", "---", "  - "]


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        start = draw(st.sampled_from(LINE_STARTS))
        body = draw(st.lists(st.sampled_from(FRAGMENTS), max_size=4))
        lines.append(start + " ".join(body))
    line_end = draw(st.sampled_from(["\n", "\r\n"]))
    return line_end.join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_numbering_is_a_fixed_point(text: str) -> None:
    parsed = parse_spec(text, "s.md")
    blocking = lint(parsed, require_ids=False)  # never raises
    if blocking:
        with pytest.raises(SpecLintError):
            assign_ids(parsed)
        return
    first = assign_ids(parsed)
    again = parse_spec(first.text, "s.md")
    assert lint(again) == []
    assert not assign_ids(again).changed
    # Numbering only ever adds text: every original line is still there, in order.
    assert len(first.text.split("\n")) == len(text.split("\n"))
    ids = [r.id for r in again.requirements]
    assert len(ids) == len(set(ids))
    assert len(ids) == len(parsed.requirements) + len(first.assigned)
