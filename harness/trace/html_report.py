"""``report.html``: one self-contained page a person takes in at a glance, then drills into.

From the top: the requirements by state as one bar, then per spec section, drawn
as inline SVG (no network, no script needed to see it; each segment has a
tooltip, and clicking one filters the matrix); the failing requirements, each
with its failing tests and the first line of each failure; then the matrix,
filterable by state, level, section and kind of evidence, with a column per
kind of evidence that occurs. Requirement IDs link to their anchor in the spec,
tests to their file and line.

No CDN, no external file: CSS and JS are inline, so the page works from a CI
artefact download or ``file://``. Every text from the spec, the tests and the
OpenAPI document goes through :func:`html.escape`. The filter state lives in
the URL fragment (``report.html#state=failing&level=MUST&section=...``): the
page applies it on load and updates it on every change, so a filtered view can
be linked, and a headless browser's ``--dump-dom`` shows the filtered rows.
Filtering sets the ``hidden`` attribute on rows that do not match.
"""

from __future__ import annotations

import re
from html import escape

from harness.trace.compliance import case_link
from harness.trace.evidence import KINDS
from harness.trace.index import LEVELS
from harness.trace.report import ReqInfo, Trace, evidence_states
from harness.trace.states import STATES

__all__ = ["STATE_COLOURS", "render_html"]

STATE_COLOURS: dict[str, str] = {
    "verified": "#3a9d4a",
    "failing": "#d13b3b",
    "flaky": "#e8902c",
    "suspect": "#d8c22a",
    "xfail": "#8a7fd0",
    "partly-skipped": "#7fa7d0",
    "skipped": "#a9a9c8",
    "untested": "#bdbdbd",
}
"""The chart's colour of each state (distinct, also for the screenshot test)."""

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f4f4f4}tr[hidden]{display:none}.filters label{margin-right:1em}
.s-verified{background:#d9f2d9}.s-failing{background:#f8d0d0}.s-flaky{background:#fbe3c4}
.s-suspect{background:#f7f0b5}.s-xfail,.s-skipped,.s-partly-skipped{background:#e6e6f5}
.s-untested{background:#eee}code{font-size:.9em}ul{margin:0;padding-left:1.2em}
#chart rect.seg{cursor:pointer}#chart text{font:12px system-ui,sans-serif;fill:#222}
.legend span{display:inline-block;margin-right:1em}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
td.ev{text-align:center}.ev-verified{color:#1f7a2e}.ev-failing{color:#b00}
.failure{color:#8b0000;font-family:monospace;white-space:pre-wrap}
"""

_JS = """
(function(){
  var f={state:document.getElementById('f-state'),level:document.getElementById('f-level'),
         section:document.getElementById('f-section'),evidence:document.getElementById('f-evidence')};
  var rows=Array.prototype.slice.call(document.querySelectorAll('#matrix tbody tr'));
  function ok(r,k){
    if(!f[k].value){return true;}
    if(k==='evidence'){return (' '+r.dataset.evidence+' ').indexOf(' '+f[k].value+' ')>=0;}
    return r.dataset[k]===f[k].value;
  }
  function apply(){
    var n=0;
    rows.forEach(function(r){
      var show=Object.keys(f).every(function(k){return ok(r,k);});
      r.hidden=!show; if(show){n++;}
    });
    document.getElementById('shown').textContent=n+' of '+rows.length+' shown';
  }
  function save(){
    var p=new URLSearchParams();
    Object.keys(f).forEach(function(j){if(f[j].value){p.set(j,f[j].value);}});
    history.replaceState(null,'','#'+p.toString()); apply();
  }
  function fromHash(){
    var p=new URLSearchParams(location.hash.slice(1));
    Object.keys(f).forEach(function(k){f[k].value=p.get(k)||'';});
    apply();
  }
  Object.keys(f).forEach(function(k){f[k].addEventListener('change',save);});
  Array.prototype.forEach.call(document.querySelectorAll('#chart rect.seg'),function(s){
    s.addEventListener('click',function(){
      f.state.value=s.dataset.state; f.section.value=s.dataset.section||''; save();
      document.getElementById('matrix').scrollIntoView();
    });
  });
  window.addEventListener('hashchange',fromHash);
  fromHash();
})();
"""

_SPECIAL = re.compile(r"[&<>\"']")
_BAR_WIDTH = 600
_BAR_HEIGHT = 14
_ROW_GAP = 6
_LABEL_WIDTH = 230


def _escape(text: str) -> str:
    """:func:`html.escape`, skipped for the common text without any special character."""
    return escape(text) if _SPECIAL.search(text) else text


def _select(name: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (
        f'<label>{name} <select id="f-{name}" name="{name}">'
        f'<option value="">(all)</option>{options}</select></label>'
    )


def _bar(y: int, counts: dict[str, int], label: str, section: str | None) -> list[str]:
    """One stacked bar: a segment per state with a count, proportional to the total."""
    total = sum(counts.values())
    out = [
        f'<text x="0" y="{y + _BAR_HEIGHT - 3}">{escape(label)}</text>',
    ]
    x = float(_LABEL_WIDTH)
    for state in STATES:
        count = counts.get(state, 0)
        if not count:
            continue
        width = _BAR_WIDTH * count / total
        where = f' data-section="{escape(section)}"' if section is not None else ""
        out.append(
            f'<rect class="seg" x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_BAR_HEIGHT}" '
            f'fill="{STATE_COLOURS[state]}" data-state="{state}" data-count="{count}"{where}>'
            f"<title>{escape(label)}: {count} {state}</title></rect>"
        )
        x += width
    out.append(
        f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 8}" y="{y + _BAR_HEIGHT - 3}">{total}</text>'
    )
    return out


def _chart(rows: list[tuple[ReqInfo, str, list[tuple[str, str]]]]) -> str:
    """Inline SVG: all requirements by state, then one bar per spec section."""
    overall: dict[str, int] = {}
    sections: dict[str, dict[str, int]] = {}
    for req, state, _ in rows:
        overall[state] = overall.get(state, 0) + 1
        per = sections.setdefault(req.section, {})
        per[state] = per.get(state, 0) + 1
    step = _BAR_HEIGHT + _ROW_GAP
    height = step * (len(sections) + 2)
    parts = [
        f'<svg id="chart" role="img" '
        f'width="{_LABEL_WIDTH + _BAR_WIDTH + 50}" height="{height}" '
        f'aria-label="requirements by state, per spec section">'
    ]
    parts += _bar(0, overall, "all requirements", None)
    for number, (section, counts) in enumerate(sections.items(), start=2):
        label = section if len(section) <= 34 else section[:33] + "…"
        parts += _bar(step * number - step // 2, counts, label or "(no section)", section)
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{STATE_COLOURS[s]}"></i>{s} {overall[s]}</span>'
        for s in STATES
        if s in overall
    )
    return "".join(parts) + f'\n<p class="legend">{legend}</p>\n'


def _test_item(trace: Trace, link_base: str, nodeid: str, outcome: str) -> str:
    target = case_link(link_base, trace.cases.get(nodeid))
    name = f"<code>{escape(nodeid)}</code>"
    if target is not None:
        name = f'<a href="{escape(target)}">{name}</a>'
    return f"<li>{name} {escape(outcome)}</li>"


def _requirement_link(trace: Trace, link_base: str, req_id: str) -> str:
    if trace.spec is None:
        return escape(req_id)
    return f'<a href="{escape(link_base + trace.spec)}#{escape(req_id)}">{escape(req_id)}</a>'


def _failing(
    trace: Trace, link_base: str, rows: list[tuple[ReqInfo, str, list[tuple[str, str]]]]
) -> str:
    failing = [(req, tests) for req, state, tests in rows if state == "failing"]
    if not failing:
        return '<h2 id="failing">Failing requirements</h2>\n<p>None.</p>\n'
    out = [f'<h2 id="failing">Failing requirements ({len(failing)})</h2>\n<ul class="failing">']
    for req, tests in failing:
        items = []
        for nodeid, outcome in tests:
            if outcome != "failed":
                continue
            case = trace.cases.get(nodeid)
            line = case.failure if case is not None and case.failure else "(no message)"
            items.append(
                _test_item(trace, link_base, nodeid, outcome)[: -len("</li>")]
                + f'<div class="failure">{escape(line)}</div></li>'
            )
        out.append(
            f"<li>{_requirement_link(trace, link_base, req.id)} ({escape(req.level)}, "
            f"{escape(req.section)}): {escape(req.text)}<ul>{''.join(items)}</ul></li>"
        )
    out.append("</ul>\n")
    return "".join(out)


def render_html(trace: Trace, link_base: str = "") -> str:
    """Deterministic HTML for ``trace`` (same trace, same bytes); links to the spec and the
    test files are relative to ``link_base``, the path from the report to the rootdir."""
    rows = trace.rows()
    sections = list(dict.fromkeys(req.section for req, _, _ in rows))
    counts = dict.fromkeys(STATES, 0)
    for _, state, _ in rows:
        counts[state] += 1
    evidence = [evidence_states(tests, trace.cases) for _, _, tests in rows]
    kinds = [kind for kind in KINDS if any(kind in e for e in evidence)]
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(trace.title)} traceability</title>",
        f"<style>{_CSS}</style></head><body>\n",
        f"<h1>{escape(trace.title)} traceability</h1>\n",
        f"<p>Index <code>{escape(trace.index)}</code>: {len(rows)} requirement(s), "
        f"{len(trace.tests)} citing test case(s). ",
        ", ".join(f"{escape(s)}: {counts[s]}" for s in STATES),
        "</p>\n",
        _chart(rows),
        _failing(trace, link_base, rows),
        '<h2 id="requirements">Requirements</h2>\n<p class="filters">',
        _select("state", list(STATES)),
        _select("level", list(LEVELS)),
        _select("section", sections),
        _select("evidence", kinds),
        ' <span id="shown"></span></p>\n',
        '<table id="matrix"><thead><tr><th>ID</th><th>Level</th><th>State</th><th>Section</th>'
        "<th>Requirement</th>",
        "".join(f'<th class="ev">{escape(kind)}</th>' for kind in kinds),
        "<th>Tests</th><th>Operations</th></tr></thead><tbody>\n",
    ]
    for (req, state, tests), states in zip(rows, evidence, strict=True):
        items = "".join(_test_item(trace, link_base, n, o) for n, o in tests)
        tests_cell = (
            f"<details><summary>{len(tests)}</summary><ul>{items}</ul></details>" if tests else "0"
        )
        ops = "<br>".join(f"<code>{escape(o)}</code>" for o in req.operations)
        verified = " ".join(kind for kind, s in states.items() if s == "verified")
        cells = "".join(
            f'<td class="ev ev-{states[kind]}" title="{escape(kind)}: {states[kind]}">'
            f"{'✓' if states[kind] == 'verified' else '✗' if states[kind] == 'failing' else '~'}"
            "</td>"
            if kind in states
            else '<td class="ev"></td>'
            for kind in kinds
        )
        out.append(
            f'<tr id="{escape(req.id)}" class="s-{escape(state)}" data-state="{escape(state)}" '
            f'data-level="{escape(req.level)}" data-section="{escape(req.section)}" '
            f'data-evidence="{verified}">'
            f"<td>{_requirement_link(trace, link_base, req.id)}</td><td>{escape(req.level)}</td>"
            f"<td>{escape(state)}</td><td>{escape(req.section)}</td><td>{escape(req.text)}</td>"
            f"{cells}<td>{tests_cell}</td><td>{ops}</td></tr>\n"
        )
    out.append(f"</tbody></table>\n<script>{_JS}</script>\n</body></html>\n")
    return "".join(out)
