"""Renderers (COMPLIANCE.md, HTML) escape every text, and the state rules with ``suspect``."""

from __future__ import annotations

import pytest

from harness.trace.compliance import md_escape, render_compliance
from harness.trace.html_report import render_html
from harness.trace.states import requirement_state
from tests.harness.trace.report_helpers import synthetic_trace

_EVIL = 'The server MUST keep <script>alert("x")</script> a | b & `c` *d*.'


def test_html_escapes_all_text_and_is_self_contained() -> None:
    trace = synthetic_trace({'t.py::test_<b>["&"]': (("ORCH-0001",), "passed")}, texts={1: _EVIL})
    html = render_html(trace)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "t.py::test_&lt;b&gt;[&quot;&amp;&quot;]" in html
    assert 'data-section="2 &lt;More&gt; &amp; | more"' in html
    assert "http" not in html  # no CDN, no external resource
    assert html.count("<script>") == 1


def test_markdown_escapes_table_breaking_text() -> None:
    md = render_compliance(synthetic_trace({}, texts={1: _EVIL}))
    row = next(line for line in md.splitlines() if line.startswith('| <a id="ORCH-0001">'))
    assert row.count(" | ") == 6  # seven cells, none split by the text's own pipe
    assert "\\<script\\>" in row
    assert md_escape("a\nb  c|d") == "a b c\\|d"


@pytest.mark.parametrize(
    ("outcomes", "suspect", "state"),
    [
        (["passed"], True, "suspect"),
        ([], True, "untested"),
        (["skipped"], True, "suspect"),
        (["flaky"], True, "flaky"),
        (["failed", "flaky"], True, "failing"),
        (["passed"], False, "verified"),
    ],
)
def test_state_precedence(outcomes: list[str], suspect: bool, state: str) -> None:
    assert requirement_state(outcomes, suspect) == state


def test_rendering_is_deterministic() -> None:
    outcomes = {f"t.py::test_{i}": (("ORCH-0001", "ORCH-0002"), "passed") for i in range(50)}
    one, two = synthetic_trace(outcomes), synthetic_trace(dict(reversed(outcomes.items())))
    assert render_html(one) == render_html(two)
    assert render_compliance(one) == render_compliance(two)
    assert one.render() == two.render()
