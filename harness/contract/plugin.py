"""pytest options of the Pact suites: where consumer tests write, which pact the provider replays.

Loaded into every pytest run (entry point ``orchq_contract``), so it imports
only the standard library and pytest.

``--orch-pact-dir`` is cleared once per run, in the xdist controller only (a
worker has ``workerinput``): the FFI *merges* into existing files, so a stale
interaction from an earlier run would otherwise survive. Without the option each
run writes into its own temporary directory and the repository stays clean.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["committed_pact_dir", "pact_dir_option", "pact_file_option"]


def committed_pact_dir() -> Path:
    """``contracts/pacts/`` of the checkout this package runs from (may not exist)."""
    return Path(__file__).resolve().parents[2] / "contracts" / "pacts"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orchq pact")
    group.addoption(
        "--orch-pact-dir",
        metavar="DIR",
        default=os.environ.get("ORCHQ_PACT_DIR"),
        help="consumer pact tests write their pacts here, cleared at the start of the run "
        "(env ORCHQ_PACT_DIR; default: a temporary directory per run)",
    )
    group.addoption(
        "--orch-pact-file",
        metavar="FILE",
        default=os.environ.get("ORCHQ_PACT_FILE"),
        help="pact file the provider verification replays (env ORCHQ_PACT_FILE; default: "
        "contracts/pacts/orchq-client-orchestratord.json, else built from the interaction table)",
    )


def pact_dir_option(config: pytest.Config) -> Path | None:
    value: str | None = config.getoption("orch_pact_dir", None)
    return Path(value) if value else None


def pact_file_option(config: pytest.Config) -> Path | None:
    value: str | None = config.getoption("orch_pact_file", None)
    return Path(value) if value else None


def pytest_configure(config: pytest.Config) -> None:
    directory = pact_dir_option(config)
    if directory is None or hasattr(config, "workerinput"):
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()


@pytest.fixture(scope="session")
def orch_pact_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's consumer tests merge their pacts."""
    directory = pact_dir_option(request.config)
    if directory is not None:
        return directory
    return tmp_path_factory.mktemp("pacts")
