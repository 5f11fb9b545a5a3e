"""The conformance suite's own pytest set-up: its markers and its Hypothesis profile.

Loaded only when the suite itself is collected (``pytest --pyargs
harness.conformance``, ``orchq verify``, or a checkout's test run), never into
an unrelated project's run.
"""

from __future__ import annotations

import pytest

from harness.conformance import SUITE_MARKERS
from harness.properties.profile import register_profile


def pytest_configure(config: pytest.Config) -> None:
    for name, text in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    register_profile()
