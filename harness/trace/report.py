"""The traceability report model: outcomes -> requirement states -> ``orchq-trace/4`` JSON.

One :class:`Trace` holds everything a report needs: the active requirements of
the index (with the hash accepted in the lock and the OpenAPI operations behind
each) and the final outcome of every test that cites at least one of them. The
plugin builds it from a run, ``orchq trace merge`` from several shards, and
every renderer (JSON, ``COMPLIANCE.md``, HTML, diff) reads only this model, so
all of them agree.

Outcomes, requirement states and gate levels are defined in
:mod:`harness.trace.states`. The JSON is canonical (sorted keys, no timestamps, no
absolute paths), so equal outcomes give byte-identical files, serial, under xdist,
or merged from shards. Its layout is published as a JSON Schema
(:data:`~harness.trace.states.SCHEMA_FILE`, ``docs/trace-format.md``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.trace.evidence import KINDS
from harness.trace.index import LEVELS, ORCH, IdScheme, Index
from harness.trace.states import NOT_REACHED, SCHEMA, STATES, requirement_state

DEFAULT_TITLE = "OrchQueue v1"
"""The report title of a project that configures none."""


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
class Blame:
    """A failed test's failure as its checks attributed it (see :mod:`harness.checks`)."""

    failed: tuple[str, ...]
    """The requirements whose check failed (any ID, cited by the test or not)."""
    passed: tuple[str, ...] = ()
    """Cited requirements whose checks had passed before the failure."""

    def outcome(self, req_id: str) -> str:
        """The failed test's outcome for ``req_id``."""
        if req_id in self.failed:
            return "failed"
        return "passed" if req_id in self.passed else NOT_REACHED

    def merged(self, other: Blame) -> Blame:
        """Two failed runs of one test (CI shards): blamed on both, passed where both passed."""
        failed = tuple(sorted(set(self.failed) | set(other.failed), key=id_order))
        passed = set(self.passed) & set(other.passed)
        return Blame(failed, tuple(i for i in sorted(passed, key=id_order) if i not in failed))


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


NO_INFO = CaseInfo()


def evidence_states(
    tests: Iterable[tuple[str, str]], cases: Mapping[str, CaseInfo]
) -> dict[str, str]:
    """Per kind of evidence, the state its citing cases of that kind give a requirement."""
    by_kind: dict[str, set[str]] = {}
    for nodeid, outcome in tests:
        by_kind.setdefault(cases.get(nodeid, NO_INFO).evidence, set()).add(outcome)
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
    blame: dict[str, Blame] = field(default_factory=dict)
    """nodeid -> how its failure was attributed, for failed tests whose checks named it."""

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
            blame = self.blame.get(nodeid) if outcome == "failed" else None
            if blame is None:
                entry = (nodeid, outcome)
                for req_id in ids:
                    cited = by_req.get(req_id)
                    if cited is not None:
                        cited.append(entry)
                continue
            for req_id in sorted({*ids, *blame.failed}, key=id_order):
                cited = by_req.get(req_id)
                if cited is not None:
                    cited.append((nodeid, blame.outcome(req_id)))
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
        tests_out: list[dict[str, Any]] = []
        for nodeid in sorted(self.tests):
            ids, outcome = self.tests[nodeid]
            case = self.cases.get(nodeid, NO_INFO)
            entry: dict[str, Any] = {
                "evidence": case.evidence,
                "failure": case.failure,
                "line": case.line,
                "nodeid": nodeid,
                "outcome": outcome,
                "path": case.path,
                "requirements": list(ids),
            }
            blame = self.blame.get(nodeid)
            if blame is not None and outcome == "failed":
                entry["blamed"] = list(blame.failed)
                entry["checked"] = list(blame.passed)
            tests_out.append(entry)
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


def id_order(req_id: str) -> tuple[int, str]:
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
    blame: Mapping[str, Blame] | None = None,
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
        blame=dict(blame or {}),
    )
