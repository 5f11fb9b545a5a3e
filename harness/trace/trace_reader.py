"""Read an ``orchq-trace/4`` file back into a :class:`~harness.trace.report.Trace`; merge shards.

:func:`parse_trace` rejects, in one line naming the key, any file that is not exactly
what :meth:`Trace.document <harness.trace.report.Trace.document>` writes, including
derived fields that disagree with the cases (a hand-edited state). :func:`merge_traces`
combines CI shards built from one index, lock and OpenAPI document: a test seen twice
keeps its worse outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.trace.evidence import KINDS
from harness.trace.index import LEVELS, IdScheme, TraceFileError
from harness.trace.report import (
    NO_INFO,
    Blame,
    CaseInfo,
    ReqInfo,
    Trace,
    evidence_states,
    id_order,
)
from harness.trace.states import OUTCOME_RANK, OUTCOMES, SCHEMA, STATES, worse_outcome


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
    if [r.id for r in reqs] != sorted(seen, key=id_order):
        raise _Bad("requirements must be in ID order")
    tests: dict[str, tuple[tuple[str, ...], str]] = {}
    blames: dict[str, Blame] = {}
    cases: dict[str, CaseInfo] = {}
    test_keys = {"evidence", "failure", "line", "nodeid", "outcome", "path", "requirements"}
    for pos, entry in enumerate(_expect(top["tests"], list, "tests")):
        # The hot loop of a 100k-test trace: cheap checks first, precise messages on failure.
        if type(entry) is not dict or entry.keys() != test_keys:
            if type(entry) is dict and entry.keys() == test_keys | _BLAME_KEYS:
                blames[str(entry.get("nodeid"))] = _blame_of(entry, pos, scheme)
            else:
                _keys(entry, test_keys, f"tests[{pos}]")
        nodeid, outcome, ids = entry["nodeid"], entry["outcome"], entry["requirements"]
        if type(nodeid) is not str:
            raise _Bad(f"tests[{pos}].nodeid must be a string")
        if outcome not in OUTCOME_RANK:
            raise _Bad(f"tests[{pos}].outcome must be one of {', '.join(OUTCOMES)}")
        if type(ids) is not list or not seen.issuperset(ids):
            _expect(ids, list, f"tests[{pos}].requirements")
            unknown = next(i for i in ids if i not in seen)
            raise _Bad(f"tests[{pos}].requirements: {unknown!r} is not a requirement of this trace")
        if nodeid in tests:
            raise _Bad(f"tests[{pos}]: duplicate nodeid {nodeid!r}")
        if nodeid in blames and outcome != "failed":
            raise _Bad(f"tests[{pos}]: only a failed test is blamed on requirements")
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
        blame=blames,
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


_BLAME_KEYS = {"blamed", "checked"}


def _blame_of(entry: Mapping[str, Any], pos: int, scheme: IdScheme) -> Blame:
    where = f"tests[{pos}]"
    failed = _expect(entry["blamed"], list, f"{where}.blamed")
    passed = _expect(entry["checked"], list, f"{where}.checked")
    for req_id in [*failed, *passed]:
        if not isinstance(req_id, str) or not scheme.is_valid(req_id):
            raise _Bad(f"{where}: malformed requirement ID {req_id!r} in blamed/checked")
    if not failed:
        raise _Bad(f"{where}.blamed: a blamed test names at least one requirement")
    return Blame(tuple(failed), tuple(passed))


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
    blames: dict[str, Blame | None] = {}
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
            blame = trace.blame.get(nodeid) if outcome == "failed" else None
            case = trace.cases.get(nodeid, NO_INFO)
            previous = tests.get(nodeid)
            if previous is None:
                tests[nodeid] = (ids, outcome)
                blames[nodeid] = blame
                cases[nodeid] = case
                continue
            union = tuple(sorted(set(previous[0]) | set(ids), key=id_order))
            worse = worse_outcome(previous[1], outcome)
            tests[nodeid] = (union, worse)
            if outcome == "failed" and previous[1] == "failed":
                before = blames.get(nodeid)
                # Both failed: blamed only if both failures were attributed.
                blames[nodeid] = before.merged(blame) if before and blame else None
            elif outcome == "failed":
                blames[nodeid] = blame
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
        {nodeid: blame for nodeid, blame in blames.items() if blame is not None},
    )
