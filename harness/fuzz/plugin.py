"""pytest options of the fuzz suite (entry point ``orchq_fuzz``).

Loaded into every pytest run where orchq is installed, so it imports only the
standard library and pytest; Schemathesis is imported by the suite itself.
Defaults keep ``harness/conformance/test_fuzz.py`` at about half a minute
in-process; raise them for a deeper run, e.g. ``--orch-fuzz-examples 500
--orch-fuzz-explore`` against a staging server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return _positive_int(text)
    except ValueError:
        raise pytest.UsageError(f"{name}={text!r}: expected a positive integer") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orchq fuzz")
    group.addoption(
        "--orch-fuzz-examples",
        type=_positive_int,
        default=_env_int("ORCHQ_FUZZ_EXAMPLES", DEFAULT_EXAMPLES),
        metavar="N",
        help=f"fuzz cases per operation (env ORCHQ_FUZZ_EXAMPLES, default {DEFAULT_EXAMPLES})",
    )
    group.addoption(
        "--orch-fuzz-scenarios",
        type=_positive_int,
        default=_env_int("ORCHQ_FUZZ_SCENARIOS", DEFAULT_SCENARIOS),
        metavar="N",
        help="stateful scenarios along the OpenAPI links (env ORCHQ_FUZZ_SCENARIOS, "
        f"default {DEFAULT_SCENARIOS})",
    )
    group.addoption(
        "--orch-fuzz-steps",
        type=_positive_int,
        default=_env_int("ORCHQ_FUZZ_STEPS", DEFAULT_STEPS),
        metavar="N",
        help=f"most calls per stateful scenario (env ORCHQ_FUZZ_STEPS, default {DEFAULT_STEPS})",
    )
    group.addoption(
        "--orch-fuzz-explore",
        action="store_true",
        default=os.environ.get("ORCHQ_FUZZ_EXPLORE", "") not in ("", "0"),
        help="new random cases every run instead of the same reproducible ones "
        "(env ORCHQ_FUZZ_EXPLORE=1)",
    )
    group.addoption(
        "--orch-fuzz-contract",
        default=os.environ.get("ORCHQ_FUZZ_CONTRACT"),
        metavar="PATH",
        help="the OpenAPI contract to fuzz (env ORCHQ_FUZZ_CONTRACT; default the committed "
        "contracts/openapi/orchqueue.yaml)",
    )


@pytest.fixture
def orch_fuzz_options(request: pytest.FixtureRequest) -> FuzzOptions:
    """The fuzz options of this run."""
    config = request.config
    contract = config.getoption("orch_fuzz_contract")
    return FuzzOptions(
        examples=config.getoption("orch_fuzz_examples"),
        scenarios=config.getoption("orch_fuzz_scenarios"),
        steps=config.getoption("orch_fuzz_steps"),
        explore=bool(config.getoption("orch_fuzz_explore")),
        contract=Path(contract) if contract else None,
    )
