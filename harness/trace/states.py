"""Test outcomes, requirement states and gate levels of the ``orchq-trace`` format.

Test outcomes, from best to worst (a test seen twice, e.g. in two CI shards,
keeps the worse one): ``passed``, ``skipped``, ``xfailed``, ``xpassed``,
``flaky`` (failed, then passed on a rerun), ``failed``.

A failed test whose failure a check blamed on some requirements
(:mod:`harness.checks`) carries a :class:`~harness.trace.report.Blame`: for those requirements it is
``failed``; for the others it cites, ``passed`` if their checks had passed
before the failure, else ``not-reached`` (the failure stopped the test first).
A ``not-reached`` case counts only when nothing else judges the requirement,
and then as ``skipped``: the requirement stays as its other tests leave it.

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

(the outcomes are each case's outcome *for that requirement*, as above.)

Only ``verified`` satisfies the gate: ``partly-skipped`` (a case that did not
run verified nothing), ``flaky`` (a pass that needed a rerun proves nothing
about the next run) and every other state refuse a gated requirement.

The standard library only: the pytest plugin imports this at start-up, in projects
that never write a trace.
"""

from __future__ import annotations

from collections.abc import Iterable

SCHEMA = "orchq-trace/4"
"""Version tag of the JSON report (2: texts, hashes, lock, operations, per-test outcomes;
3: the project's title and ID prefix, state names ``xfail``/``skipped``/``partly-skipped``;
4: the spec's path, each test's kind of evidence, file, line and first failure line, and
each requirement's evidence per kind)."""
SCHEMA_FILE = "orchq-trace-4.schema.json"
"""The JSON Schema of :data:`SCHEMA`, shipped beside this module."""

OUTCOMES: tuple[str, ...] = ("passed", "skipped", "xfailed", "xpassed", "flaky", "failed")
"""Final outcomes of one test case, best first."""
OUTCOME_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}

NOT_REACHED = "not-reached"
"""A failed case's outcome for a cited requirement whose check the failure came before."""

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
    return a if OUTCOME_RANK[a] >= OUTCOME_RANK[b] else b


def requirement_state(outcomes: Iterable[str], suspect: bool = False) -> str:
    """The state of one requirement from its citing cases' outcomes (rules in the module doc)."""
    seen = set(outcomes)
    if not seen:
        return "untested"
    if NOT_REACHED in seen:
        seen.discard(NOT_REACHED)
        seen = seen or {"skipped"}
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
