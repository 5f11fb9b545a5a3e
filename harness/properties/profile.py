"""The Hypothesis profile of orchq's suites, which a run's own Hypothesis options override.

Profile ``orchq`` is deterministic and bounded: derandomised (the same examples
on every run), no example database, no deadline. The conformance suite
registers it (never loads it, so nothing changes for other Hypothesis tests of
the run) and builds its settings on :func:`suite_settings`:

- ``--hypothesis-profile NAME``: the run's loaded profile is the parent instead;
- ``--hypothesis-seed N``: derandomisation is off, so N picks the examples.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

__all__ = ["PROFILE", "register_profile", "suite_settings"]

PROFILE = "orchq"


def register_profile() -> None:
    """Register (again: idempotent) the ``orchq`` profile."""
    settings.register_profile(
        PROFILE,
        max_examples=60,
        stateful_step_count=40,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def suite_settings(config: pytest.Config | None = None) -> settings:
    """The parent settings of a suite's Hypothesis runs in the pytest run of ``config``."""
    if config is not None and config.getoption("hypothesis_profile", None):
        base = settings()  # the default is the profile Hypothesis' plugin loaded
    else:
        register_profile()
        base = settings.get_profile(PROFILE)
    if config is not None and config.getoption("hypothesis_seed", None) is not None:
        base = settings(base, derandomize=False)
    return base
