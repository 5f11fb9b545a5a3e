"""``report.html``: one self-contained page, a requirement matrix filterable by state/level/section.

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

from harness.trace.index import LEVELS
from harness.trace.report import STATES, Trace

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f4f4f4}tr[hidden]{display:none}.filters label{margin-right:1em}
.s-verified{background:#d9f2d9}.s-failing{background:#f8d0d0}.s-flaky{background:#fbe3c4}
.s-suspect{background:#f7f0b5}.s-xfail,.s-skipped,.s-partly-skipped{background:#e6e6f5}
.s-untested{background:#eee}code{font-size:.9em}ul{margin:0;padding-left:1.2em}
"""

_JS = """
(function(){
  var f={state:document.getElementById('f-state'),level:document.getElementById('f-level'),
         section:document.getElementById('f-section')};
  var rows=Array.prototype.slice.call(document.querySelectorAll('#matrix tbody tr'));
  function apply(){
    var n=0;
    rows.forEach(function(r){
      var ok=Object.keys(f).every(function(k){return !f[k].value||r.dataset[k]===f[k].value;});
      r.hidden=!ok; if(ok){n++;}
    });
    document.getElementById('shown').textContent=n+' of '+rows.length+' shown';
  }
  function fromHash(){
    var p=new URLSearchParams(location.hash.slice(1));
    Object.keys(f).forEach(function(k){f[k].value=p.get(k)||'';});
    apply();
  }
  Object.keys(f).forEach(function(k){f[k].addEventListener('change',function(){
    var p=new URLSearchParams();
    Object.keys(f).forEach(function(j){if(f[j].value){p.set(j,f[j].value);}});
    history.replaceState(null,'','#'+p.toString()); apply();
  });});
  window.addEventListener('hashchange',fromHash);
  fromHash();
})();
"""


_SPECIAL = re.compile(r"[&<>\"']")


def _escape(text: str) -> str:
    """:func:`html.escape`, skipped for the common text without any special character."""
    return escape(text) if _SPECIAL.search(text) else text


def _select(name: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (
        f'<label>{name} <select id="f-{name}" name="{name}">'
        f'<option value="">(all)</option>{options}</select></label>'
    )


def render_html(trace: Trace) -> str:
    """Deterministic HTML for ``trace`` (same trace, same bytes)."""
    rows = trace.rows()
    sections = list(dict.fromkeys(req.section for req, _, _ in rows))
    counts = dict.fromkeys(STATES, 0)
    for _, state, _ in rows:
        counts[state] += 1
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(trace.title)} traceability</title>",
        f"<style>{_CSS}</style></head><body>\n",
        f"<h1>{escape(trace.title)} traceability</h1>\n",
        f"<p>Index <code>{escape(trace.index)}</code>: {len(rows)} requirement(s), "
        f"{len(trace.tests)} citing test case(s). ",
        ", ".join(f"{escape(s)}: {counts[s]}" for s in STATES),
        '</p>\n<p class="filters">',
        _select("state", list(STATES)),
        _select("level", list(LEVELS)),
        _select("section", sections),
        ' <span id="shown"></span></p>\n',
        '<table id="matrix"><thead><tr><th>ID</th><th>Level</th><th>State</th><th>Section</th>'
        "<th>Requirement</th><th>Tests</th><th>Operations</th></tr></thead><tbody>\n",
    ]
    for req, state, tests in rows:
        items = "".join(f"<li><code>{escape(n)}</code> {escape(o)}</li>" for n, o in tests)
        tests_cell = (
            f"<details><summary>{len(tests)}</summary><ul>{items}</ul></details>" if tests else "0"
        )
        ops = "<br>".join(f"<code>{escape(o)}</code>" for o in req.operations)
        out.append(
            f'<tr id="{escape(req.id)}" class="s-{escape(state)}" data-state="{escape(state)}" '
            f'data-level="{escape(req.level)}" data-section="{escape(req.section)}">'
            f"<td>{escape(req.id)}</td><td>{escape(req.level)}</td><td>{escape(state)}</td>"
            f"<td>{escape(req.section)}</td><td>{escape(req.text)}</td>"
            f"<td>{tests_cell}</td><td>{ops}</td></tr>\n"
        )
    out.append(f"</tbody></table>\n<script>{_JS}</script>\n</body></html>\n")
    return "".join(out)
