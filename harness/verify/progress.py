"""A pytest plugin for ``orchq verify``: per-suite progress and first failure lines.

It runs in the controlling process only (xdist replays worker reports there),
so it sees every test once. Suites are recognised by module name
(``harness/conformance/test_<suite>.py``), which works identically serially
and under xdist, where the controller never sees the items' markers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pytest

__all__ = ["FailedTest", "SuiteProgress", "suite_of"]

_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "failed": 2, "error": 3}


def suite_of(nodeid: str) -> str:
    """``harness/conformance/test_fuzz.py::test_x[...]`` -> ``fuzz``.

    A suite may span modules: ``test_contract_http.py`` belongs to ``contract``.
    """
    name = PurePosixPath(nodeid.split("::", 1)[0]).stem
    return name.removeprefix("test_").split("_", 1)[0]


@dataclass(frozen=True)
class FailedTest:
    nodeid: str
    first_line: str


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext or report.outcome
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return report.outcome


@dataclass(eq=False)  # pluggy keeps plugins in sets
class SuiteProgress:
    """Counts per suite; ``on_change(suite)`` is called after every finished test."""

    on_change: Callable[[str], None] = lambda suite: None
    totals: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failures: dict[str, FailedTest] = field(default_factory=dict)
    skip_reasons: dict[str, str] = field(default_factory=dict)
    """nodeid -> why it was skipped (``Skipped: `` prefix removed)."""
    _outcome: dict[str, str] = field(default_factory=dict)

    def _collected(self, nodeids: Sequence[str]) -> None:
        if self.totals:
            return  # every xdist worker reports the same collection
        self.totals.update(suite_of(n) for n in nodeids)
        for suite in self.totals:
            self.on_change(suite)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._collected([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self._collected(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome: str = report.outcome
        if report.failed and report.when != "call":
            outcome = "error"
        elif hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "passed"
        if outcome not in _RANK:
            return  # a rerun attempt: only the final one counts
        previous = self._outcome.get(report.nodeid, "passed")
        if _RANK[outcome] > _RANK[previous]:
            self._outcome[report.nodeid] = outcome
            if outcome in ("failed", "error") and report.nodeid not in self.failures:
                self.failures[report.nodeid] = FailedTest(report.nodeid, _first_line(report))
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            self.skip_reasons.setdefault(report.nodeid, reason)
        if report.when != "teardown":
            return
        suite = suite_of(report.nodeid)
        final = self._outcome.pop(report.nodeid, "passed")
        self.done[suite] += 1
        if final in ("failed", "error"):
            self.failed[suite] += 1
        elif final in ("skipped", "xfailed"):
            self.skipped[suite] += 1
        self.on_change(suite)
