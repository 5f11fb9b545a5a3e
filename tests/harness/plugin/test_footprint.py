"""What the installed plugin loads in a project that does not use it.

A project that never opts in pays for the ``orchq`` entry point with its start-up
time, so at start-up the plugin loads only its own plugin modules: nothing else of
orchq (the trace index and report, the checks, orchestratord) and no
third-party module that a run with ``-p no:orchq`` does not load too.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

PLUGIN_MODULES = frozenset(
    {
        "harness",
        "harness.plugin",
        "harness.plugin.settings",
        "harness.plugin.persisted",
        "harness.plugin.target",
        "harness.plugin.fixtures",
        "harness.plugin.scripted",
        "harness.plugin.leaks",
        "harness.plugin.trace",
        "harness.plugin.trace_recorder",
        "harness.plugin.trace_settings",
        "harness.pact",
        "harness.pact.plugin",
        "harness.fuzz",
        "harness.fuzz.plugin",
        "harness.determinism",
        "harness.determinism.plugin",
        "harness.exitcodes",
        "harness.conformance",
        "harness.project",
        "harness.trace",
        "harness.trace.index",
        "harness.trace.states",
    }
)
"""The entry point, the plugin modules it lists (with their packages), and the
standard-library-only modules they read at start-up: exit codes, the suite's markers,
the project's configuration (does it opt in? with which ID scheme?) and the trace
format's states."""

CONFTEST = """
import json
import sys


def pytest_sessionfinish(session):
    (session.config.rootpath / "modules.json").write_text(json.dumps(sorted(sys.modules)))
"""


def _modules(pytester: pytest.Pytester, *args: str) -> set[str]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_unrelated="def test_it():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_project_that_does_not_use_orchq_loads_only_its_plugin_modules(
    pytester: pytest.Pytester,
) -> None:
    with_orchq = _modules(pytester)
    without = _modules(pytester, "-p", "no:orchq")
    extra = sorted(with_orchq - without - PLUGIN_MODULES)
    assert not extra, f"loading the orchq plugin also imported {extra}"
