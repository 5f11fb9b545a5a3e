"""The traceability report model: outcomes -> requirement states -> ``orchq-trace/4`` JSON.

One :class:`Trace` holds everything a report needs: the active requirements of
the index (with the hash accepted in the lock and the OpenAPI operations behind
each) and the final outcome of every test that cites at least one of them. The
plugin builds it from a run, ``orchq trace merge`` from several shards, and
every renderer (JSON, ``COMPLIANCE.md``, HTML, diff) reads only this model, so
all of them agree.

Test outcomes, from best to worst (a test seen twice, e.g. in two CI shards,
keeps the worse one): ``passed``, ``skipped``, ``xfailed``, ``xpassed``,
``flaky`` (failed, then passed on a rerun), ``failed``.

Requirement states, by precedence (the first rule that applies wins):

1. ``untested``: no test cites it (whatever its text or lock entry: with no
   coverage there is nothing to be suspicious of);
2. ``failing``: a citing test failed (setup, call or teardown, strict XPASS);
3. ``flaky``: none failed, but one passed only on a rerun;
4. ``suspect``: its text hash differs from the one in the acceptance lock, so
   the tests were accepted for another wording (see :mod:`harness.trace.lock`);
5. ``xfail``: some citing case is an expected failure (xfailed, or xpassed
   without ``strict``), none failed;
6. ``skipped``: every citing case was skipped;
7. ``partly-skipped``: some citing cases passed, the others were skipped;
8. ``verified``: every citing case passed, and the text is as accepted.

Only ``verified`` satisfies the gate: ``partly-skipped`` (a case that did not
run verified nothing), ``flaky`` (a pass that needed a rerun proves nothing
about the next run) and every other state refuse a gated requirement. The
JSON is canonical (sorted keys, no timestamps, no absolute paths), so equal
outcomes give byte-identical files, serial, under xdist, or merged from shards.
Its layout is published as a JSON Schema (:data:`SCHEMA_FILE`, ``docs/trace-format.md``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.trace.evidence import KINDS
from harness.trace.index import LEVELS, ORCH, IdScheme, Index, TraceFileError

DEFAULT_TITLE = "OrchQueue v1"
"""The report title of a project that configures none."""

__all__ = [
    "DEFAULT_TITLE",
    "GATE_LEVELS",
    "GOODNESS",
    "OUTCOMES",
    "SCHEMA",
    "SCHEMA_FILE",
    "STATES",
    "CaseInfo",
    "ReqInfo",
    "Trace",
    "build_trace",
    "index_digest",
    "merge_traces",
    "parse_trace",
    "requirement_state",
    "worse_outcome",
]

SCHEMA = "orchq-trace/4"
"""Version tag of the JSON report (2: texts, hashes, lock, operations, per-test outcomes;
3: the project's title and ID prefix, state names ``xfail``/``skipped``/``partly-skipped``;
4: the spec's path, each test's kind of evidence, file, line and first failure line, and
each requirement's evidence per kind)."""
SCHEMA_FILE = "orchq-trace-4.schema.json"
"""The JSON Schema of :data:`SCHEMA`, shipped beside this module."""

OUTCOMES: tuple[str, ...] = ("passed", "skipped", "xfailed", "xpassed", "flaky", "failed")
"""Final outcomes of one test case, best first."""
_OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}

STATES: tuple[str, ...] = (
    "verified",
    "failing",
    "flaky",
    "suspect",
    "xfail",
    "partly-skipped",
    "skipped",
    "untested",
)
"""Every requirement state, in the order reports list them."""

GOODNESS: dict[str, int] = {
    "verified": 0,
    "suspect": 1,
    "flaky": 2,
    "partly-skipped": 3,
    "xfail": 4,
    "skipped": 5,
    "untested": 6,
    "failing": 7,
}
"""How good a state is for ``trace diff`` (lower is better): a move up is a regression."""


GATE_LEVELS: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "must": frozenset({"MUST", "MUST NOT"}),
    "should": frozenset({"MUST", "MUST NOT", "SHOULD", "SHOULD NOT"}),
}
"""Which requirement levels each gate value (``--orch-gate``, ``orchq verify --gate``,
``orchq trace gate --level``) requires to be ``verified``."""


def worse_outcome(a: str, b: str) -> str:
    """The worse of two outcomes of the same test."""
    return a if _OUTCOME_RANK[a] >= _OUTCOME_RANK[b] else b


def requirement_state(outcomes: Iterable[str], suspect: bool = False) -> str:
    """The state of one requirement from its citing cases' outcomes (rules in the module doc)."""
    seen = set(outcomes)
    if not seen:
        return "untested"
    if "failed" in seen:
        return "failing"
    if "flaky" in seen:
        return "flaky"
    if suspect:
        return "suspect"
    if seen == {"passed"}:
        return "verified"
    if "xfailed" in seen or "xpassed" in seen:
        return "xfail"
    if seen == {"skipped"}:
        return "skipped"
    return "partly-skipped"


@dataclass(frozen=True)
class ReqInfo:
    """What a report shows of one active requirement, independent of the run."""

    id: str
    level: str
    section: str
    text: str
    sha256: str
    accepted: str | None
    """Hash recorded in the acceptance lock, ``None`` if the lock has no entry (or no lock)."""
    operations: tuple[str, ...] = ()

    @property
    def suspect(self) -> bool:
        return self.accepted is not None and self.accepted != self.sha256


@dataclass(frozen=True)
class CaseInfo:
    """What a report shows of one test case besides its outcome."""

    evidence: str = "unit"
    """Its kind of evidence (:data:`harness.trace.evidence.KINDS`)."""
    path: str | None = None
    """Its file, relative to the rootdir (POSIX), when known."""
    line: int | None = None
    """The 1-based line of its definition in ``path``."""
    failure: str | None = None
    """The first line of its failure message, when it failed."""


_NO_INFO = CaseInfo()


def evidence_states(
    tests: Iterable[tuple[str, str]], cases: Mapping[str, CaseInfo]
) -> dict[str, str]:
    """Per kind of evidence, the state its citing cases of that kind give a requirement."""
    by_kind: dict[str, set[str]] = {}
    for nodeid, outcome in tests:
        by_kind.setdefault(cases.get(nodeid, _NO_INFO).evidence, set()).add(outcome)
    return {kind: requirement_state(by_kind[kind]) for kind in KINDS if kind in by_kind}


@dataclass
class Trace:
    """A run's traceability: requirements (by ID number) and cited tests' final outcomes."""

    title: str
    """The project's name for its spec (``title`` of the project configuration)."""
    prefix: str
    """The project's requirement ID prefix (``ORCH``)."""
    index: str
    """Repo-relative path of the index, as shown in reports."""
    index_sha256: str
    """Digest of the index content (:func:`index_digest`): shards must agree on it."""
    lock: str | None
    openapi: str | None
    requirements: list[ReqInfo]
    tests: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    """nodeid -> (cited IDs in number order, final outcome)."""
    cases: dict[str, CaseInfo] = field(default_factory=dict)
    """nodeid -> its kind of evidence, place and failure line (absent: unknown, ``unit``)."""
    spec: str | None = None
    """Repo-relative path of the spec whose anchors (``spec#ORCH-0042``) reports link to."""

    _rows: list[tuple[ReqInfo, str, list[tuple[str, str]]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def rows(self) -> list[tuple[ReqInfo, str, list[tuple[str, str]]]]:
        """Every requirement with its state and its ``(nodeid, outcome)`` tests, sorted.

        Computed once and cached: a trace is not changed after its first use
        (:func:`merge_traces` builds a new one).
        """
        if self._rows is not None:
            return self._rows
        by_req: dict[str, list[tuple[str, str]]] = {r.id: [] for r in self.requirements}
        tests = self.tests
        for nodeid in sorted(tests):
            ids, outcome = tests[nodeid]
            entry = (nodeid, outcome)
            for req_id in ids:
                cited = by_req.get(req_id)
                if cited is not None:
                    cited.append(entry)
        self._rows = [
            (req, requirement_state({o for _, o in by_req[req.id]}, req.suspect), by_req[req.id])
            for req in self.requirements
        ]
        return self._rows

    def document(self) -> dict[str, Any]:
        """The JSON document as plain data (what :meth:`render` serialises)."""
        states = dict.fromkeys(STATES, 0)
        by_level = {level: dict.fromkeys(STATES, 0) for level in LEVELS}
        requirements: list[dict[str, Any]] = []
        for req, state, tests in self.rows():
            states[state] += 1
            by_level[req.level][state] += 1
            requirements.append(
                {
                    "accepted_sha256": req.accepted,
                    "evidence": evidence_states(tests, self.cases),
                    "id": req.id,
                    "level": req.level,
                    "operations": list(req.operations),
                    "section": req.section,
                    "sha256": req.sha256,
                    "state": state,
                    "tests": [{"nodeid": n, "outcome": o} for n, o in tests],
                    "text": req.text,
                }
            )
        tests_out = []
        for nodeid in sorted(self.tests):
            ids, outcome = self.tests[nodeid]
            case = self.cases.get(nodeid, _NO_INFO)
            tests_out.append(
                {
                    "evidence": case.evidence,
                    "failure": case.failure,
                    "line": case.line,
                    "nodeid": nodeid,
                    "outcome": outcome,
                    "path": case.path,
                    "requirements": list(ids),
                }
            )
        return {
            "index": self.index,
            "index_sha256": self.index_sha256,
            "lock": self.lock,
            "openapi": self.openapi,
            "prefix": self.prefix,
            "requirements": requirements,
            "schema": SCHEMA,
            "spec": self.spec,
            "summary": {"by_level": by_level, "states": states},
            "tests": tests_out,
            "title": self.title,
        }

    def render(self) -> str:
        """Canonical JSON text of :meth:`document`."""
        return json.dumps(self.document(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _id_order(req_id: str) -> tuple[int, str]:
    return (len(req_id), req_id)


def index_digest(index: Index) -> str:
    """SHA-256 over every requirement's ID, level, section, status and text hash.

    Two runs built on the same index get the same digest, so ``trace merge`` can
    refuse shards built from different specs.
    """
    h = hashlib.sha256()
    for req in index.requirements.values():
        h.update(f"{req.id}\0{req.level}\0{req.section}\0{req.status}\0{req.sha256}\n".encode())
    return h.hexdigest()


def build_trace(
    index: Index,
    index_shown: str,
    tests: Mapping[str, tuple[tuple[str, ...], str]],
    lock: Mapping[str, str] | None = None,
    lock_shown: str | None = None,
    operations: Mapping[str, list[str]] | None = None,
    openapi_shown: str | None = None,
    *,
    title: str = DEFAULT_TITLE,
    scheme: IdScheme = ORCH,
    cases: Mapping[str, CaseInfo] | None = None,
    spec: str | None = None,
) -> Trace:
    """A :class:`Trace` of the index's active requirements and the given final outcomes."""
    accepted = lock or {}
    ops = operations or {}
    reqs = [
        ReqInfo(
            r.id, r.level, r.section, r.text, r.sha256, accepted.get(r.id), tuple(ops.get(r.id, ()))
        )
        for r in index.active()
    ]
    return Trace(
        title=title,
        prefix=scheme.prefix,
        index=index_shown,
        index_sha256=index_digest(index),
        lock=lock_shown if lock is not None else None,
        openapi=openapi_shown if operations is not None else None,
        requirements=reqs,
        tests=dict(tests),
        cases={nodeid: case for nodeid, case in (cases or {}).items() if nodeid in tests},
        spec=spec,
    )


# ---------------------------------------------------------------- reading


class _Bad(Exception):
    pass


_KIND_NAMES: dict[Any, str] = {str: "a string", list: "a list", dict: "an object"}


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Bad(f"{where} must be {_KIND_NAMES.get(kind, 'of another type')}")
    return value


def _keys(value: Any, keys: set[str], where: str) -> Mapping[str, Any]:
    mapping: Mapping[str, Any] = _expect(value, dict, where)
    if set(mapping) != keys:
        missing = sorted(keys - set(mapping))
        extra = sorted(set(mapping) - keys)
        what = f"missing key {missing[0]!r}" if missing else f"unknown key {extra[0]!r}"
        raise _Bad(f"{where}: {what}")
    return mapping


_TOP_KEYS = {
    "index",
    "index_sha256",
    "lock",
    "openapi",
    "prefix",
    "requirements",
    "schema",
    "spec",
    "summary",
    "tests",
    "title",
}
_REQ_KEYS = {
    "accepted_sha256",
    "evidence",
    "id",
    "level",
    "operations",
    "section",
    "sha256",
    "state",
    "tests",
    "text",
}


def _optional_str(value: Any, where: str) -> str | None:
    return None if value is None else str(_expect(value, str, where))


def _trace_from_data(data: Any) -> Trace:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else None
        older = " (an older orchq's format: run the tests again with this one)"
        hint = older if isinstance(got, str) and got.startswith("orchq-trace/") else ""
        raise _Bad(f"schema must be {SCHEMA!r} (got {got!r}){hint}")
    top = _keys(data, _TOP_KEYS, "the top level")
    try:
        scheme = IdScheme(_expect(top["prefix"], str, "prefix"))
    except ValueError as exc:
        raise _Bad(f"prefix: {exc}") from None
    reqs: list[ReqInfo] = []
    seen: set[str] = set()
    for pos, entry in enumerate(_expect(top["requirements"], list, "requirements")):
        where = f"requirements[{pos}]"
        r = _keys(entry, _REQ_KEYS, where)
        req_id = _expect(r["id"], str, f"{where}.id")
        if not scheme.is_valid(req_id) or req_id in seen:
            raise _Bad(f"{where}.id: malformed or duplicate requirement ID {req_id!r}")
        seen.add(req_id)
        if r["level"] not in LEVELS:
            raise _Bad(f"{where}.level must be one of {', '.join(LEVELS)}")
        ops = _expect(r["operations"], list, f"{where}.operations")
        reqs.append(
            ReqInfo(
                req_id,
                r["level"],
                _expect(r["section"], str, f"{where}.section"),
                _expect(r["text"], str, f"{where}.text"),
                _expect(r["sha256"], str, f"{where}.sha256"),
                _optional_str(r["accepted_sha256"], f"{where}.accepted_sha256"),
                tuple(_expect(o, str, f"{where}.operations[]") for o in ops),
            )
        )
    if [r.id for r in reqs] != sorted(seen, key=_id_order):
        raise _Bad("requirements must be in ID order")
    tests: dict[str, tuple[tuple[str, ...], str]] = {}
    cases: dict[str, CaseInfo] = {}
    test_keys = {"evidence", "failure", "line", "nodeid", "outcome", "path", "requirements"}
    for pos, entry in enumerate(_expect(top["tests"], list, "tests")):
        # The hot loop of a 100k-test trace: cheap checks first, precise messages on failure.
        if type(entry) is not dict or entry.keys() != test_keys:
            _keys(entry, test_keys, f"tests[{pos}]")
        nodeid, outcome, ids = entry["nodeid"], entry["outcome"], entry["requirements"]
        if type(nodeid) is not str:
            raise _Bad(f"tests[{pos}].nodeid must be a string")
        if outcome not in _OUTCOME_RANK:
            raise _Bad(f"tests[{pos}].outcome must be one of {', '.join(OUTCOMES)}")
        if type(ids) is not list or not seen.issuperset(ids):
            _expect(ids, list, f"tests[{pos}].requirements")
            unknown = next(i for i in ids if i not in seen)
            raise _Bad(f"tests[{pos}].requirements: {unknown!r} is not a requirement of this trace")
        if nodeid in tests:
            raise _Bad(f"tests[{pos}]: duplicate nodeid {nodeid!r}")
        tests[nodeid] = (tuple(ids), outcome)
        cases[nodeid] = _case(entry, f"tests[{pos}]")
    return Trace(
        title=_expect(top["title"], str, "title"),
        prefix=scheme.prefix,
        index=_expect(top["index"], str, "index"),
        index_sha256=_expect(top["index_sha256"], str, "index_sha256"),
        lock=_optional_str(top["lock"], "lock"),
        openapi=_optional_str(top["openapi"], "openapi"),
        requirements=reqs,
        tests=tests,
        cases=cases,
        spec=_optional_str(top["spec"], "spec"),
    )


def _case(entry: Mapping[str, Any], where: str) -> CaseInfo:
    evidence = entry["evidence"]
    if evidence not in KINDS:
        raise _Bad(f"{where}.evidence must be one of {', '.join(KINDS)}")
    line = entry["line"]
    if line is not None and (type(line) is not int or line < 1):
        raise _Bad(f"{where}.line must be a positive integer or null")
    return CaseInfo(
        evidence,
        _optional_str(entry["path"], f"{where}.path"),
        line,
        _optional_str(entry["failure"], f"{where}.failure"),
    )


def _check_derived(trace: Trace, data: dict[str, Any], display: str) -> None:
    """Each requirement's state and test list, and the summary, must follow from the tests."""
    summary = dict.fromkeys(STATES, 0)
    by_level = {level: dict.fromkeys(STATES, 0) for level in LEVELS}
    for (req, state, tests), entry in zip(trace.rows(), data["requirements"], strict=True):
        summary[state] += 1
        by_level[req.level][state] += 1
        expected = [{"nodeid": n, "outcome": o} for n, o in tests]
        evidence = evidence_states(tests, trace.cases)
        if entry["state"] != state or entry["tests"] != expected or entry["evidence"] != evidence:
            raise TraceFileError(
                display,
                f"malformed trace: {req.id}: state, tests or evidence do not follow from the "
                "trace's tests (edited by hand?)",
            )
    if data["summary"] != {"by_level": by_level, "states": summary}:
        raise TraceFileError(
            display, "malformed trace: summary does not follow from the requirements"
        )


def parse_trace(text: str, display: str) -> Trace:
    """Validate trace JSON into a :class:`Trace`; raise :class:`TraceFileError` (one line).

    Besides types, the derived fields (states, per-requirement test lists,
    summary) must be exactly what the top-level tests imply: a hand-edited or truncated report is
    refused rather than silently re-interpreted.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        msg = getattr(exc, "msg", str(exc))
        raise TraceFileError(display, f"malformed trace: not JSON ({msg})", line) from None
    try:
        trace = _trace_from_data(data)
    except _Bad as exc:
        raise TraceFileError(display, f"malformed trace: {exc}") from None
    _check_derived(trace, data, display)
    return trace


def merge_traces(traces: list[tuple[str, Trace]]) -> Trace:
    """Merge CI shards: the union of tests, the worse outcome for a test seen twice.

    Every shard must come from the same index, lock and OpenAPI document;
    otherwise the merged states would mix two specs, so it is refused with a
    :class:`TraceFileError` naming the first shard that differs.
    """
    if not traces:
        raise ValueError("nothing to merge")
    first_name, first = traces[0]
    tests: dict[str, tuple[tuple[str, ...], str]] = {}
    cases: dict[str, CaseInfo] = {}
    for name, trace in traces:
        if trace.index_sha256 != first.index_sha256:
            raise TraceFileError(
                name,
                f"built from a different requirements index than {first_name} "
                f"(index_sha256 {trace.index_sha256[:12]} vs {first.index_sha256[:12]})",
            )
        if trace.requirements != first.requirements:
            diff = next(
                (
                    a.id
                    for a, b in zip(trace.requirements, first.requirements, strict=False)
                    if a != b
                ),
                "?",
            )
            raise TraceFileError(
                name,
                f"requirement {diff} differs from {first_name} "
                "(another acceptance lock or OpenAPI document?)",
            )
        for nodeid, (ids, outcome) in trace.tests.items():
            case = trace.cases.get(nodeid, _NO_INFO)
            previous = tests.get(nodeid)
            if previous is None:
                tests[nodeid] = (ids, outcome)
                cases[nodeid] = case
                continue
            union = tuple(sorted(set(previous[0]) | set(ids), key=_id_order))
            worse = worse_outcome(previous[1], outcome)
            tests[nodeid] = (union, worse)
            if worse == outcome and worse != previous[1]:
                cases[nodeid] = case  # the failure line of the shard where it failed
    return Trace(
        first.title,
        first.prefix,
        first.index,
        first.index_sha256,
        first.lock,
        first.openapi,
        first.requirements,
        tests,
        cases,
        first.spec,
    )
