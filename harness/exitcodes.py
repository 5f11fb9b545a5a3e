"""Exit codes CI can rely on, shared by the ``orchq`` CLI and the pytest plugin.

pytest's own codes (0 passed, 1 tests failed, 2 interrupted, 3 internal error,
4 usage error, 5 no tests) pass through untouched; orchq adds two of its own
above them so a pipeline can tell *why* a run was refused.
"""

from __future__ import annotations

OK = 0
TESTS_FAILED = 1
"""Also: a ``--check`` found a generated artefact stale."""
STALE = 1
USAGE = 2
"""Bad command line or bad ``orchq serve`` config (click's convention)."""
TRACE_VIOLATION = 6
"""The traceability gate refused the run (untested/failing MUST, unknown ID, ...)."""
SPEC_ERROR = 7
"""The spec, the requirements index, a trace file or the plugin config is broken."""
