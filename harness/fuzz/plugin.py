"""pytest options of the fuzz suite (loaded by the ``orchq`` plugin).

Loaded into every pytest run where orchq is installed, so it imports only the
standard library and pytest; Schemathesis is imported by the suite itself.
Each option has an ini twin (``orchq_fuzz_examples``, ...) and an environment
variable; values are read when the fuzz suite asks for them, so a bad
``ORCHQ_FUZZ_EXAMPLES`` fails the fuzz tests, never an unrelated run.
Defaults keep ``harness/conformance/test_fuzz.py`` at about half a minute
in-process; raise them for a deeper run, e.g. ``--orch-fuzz-examples 500
--orch-fuzz-explore`` against a staging server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.plugin.settings import Setting, add, orchq_session

DEFAULT_EXAMPLES = 40
DEFAULT_SCENARIOS = 40
DEFAULT_STEPS = 10


@dataclass(frozen=True)
class FuzzOptions:
    """How hard to fuzz: cases per operation, stateful scenarios and their length."""

    examples: int
    scenarios: int
    steps: int
    explore: bool
    contract: Path | None


EXAMPLES = Setting(
    "fuzz_examples",
    f"fuzz cases per operation (default {DEFAULT_EXAMPLES})",
    env="ORCHQ_FUZZ_EXAMPLES",
)
SCENARIOS = Setting(
    "fuzz_scenarios",
    f"stateful scenarios along the OpenAPI links (default {DEFAULT_SCENARIOS})",
    env="ORCHQ_FUZZ_SCENARIOS",
)
STEPS = Setting(
    "fuzz_steps",
    f"most calls per stateful scenario (default {DEFAULT_STEPS})",
    env="ORCHQ_FUZZ_STEPS",
)
EXPLORE = Setting(
    "fuzz_explore",
    "new random cases every run instead of the same reproducible ones (1/true/yes, default off)",
    env="ORCHQ_FUZZ_EXPLORE",
)
CONTRACT = Setting(
    "fuzz_contract",
    "the OpenAPI contract to fuzz (default: the one shipped with orchq, "
    "contracts/openapi/orchqueue.yaml)",
    env="ORCHQ_FUZZ_CONTRACT",
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _count(config: pytest.Config, setting: Setting, default: int) -> int:
    text = orchq_session(config).value(setting)
    if text is None:
        return default
    try:
        return _positive_int(text)
    except ValueError:
        raise pytest.UsageError(
            f"{setting.flag} / {setting.ini} / {setting.env} = {text!r}: expected a positive "
            "integer"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser, "orchq fuzz", EXAMPLES, metavar="N", type=_positive_int)
    add(parser, "orchq fuzz", SCENARIOS, metavar="N", type=_positive_int)
    add(parser, "orchq fuzz", STEPS, metavar="N", type=_positive_int)
    add(parser, "orchq fuzz", EXPLORE, action="store_const", const="1")
    add(parser, "orchq fuzz", CONTRACT, metavar="PATH")


@pytest.fixture
def orch_fuzz_options(request: pytest.FixtureRequest) -> FuzzOptions:
    """The fuzz options of this run."""
    config = request.config
    settings = orchq_session(config)
    return FuzzOptions(
        examples=_count(config, EXAMPLES, DEFAULT_EXAMPLES),
        scenarios=_count(config, SCENARIOS, DEFAULT_SCENARIOS),
        steps=_count(config, STEPS, DEFAULT_STEPS),
        explore=(settings.value(EXPLORE) or "").lower() in ("1", "true", "yes", "on"),
        contract=settings.path(CONTRACT),
    )
