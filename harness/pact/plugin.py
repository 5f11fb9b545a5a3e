"""pytest options of the Pact suites: where consumer tests write, which pact the provider replays.

Loaded by the ``orchq`` plugin into every pytest run, so it imports only the
standard library and pytest.

``--orch-pact-dir`` (ini ``orchq_pact_dir``) is cleared once per run, in the
xdist controller only (a worker has ``workerinput``): the FFI *merges* into
existing files, so a stale interaction from an earlier run would otherwise
survive. Only an explicit option does that: no environment variable can make
a run delete files. Without it each run writes into its own temporary
directory and the repository stays clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.plugin.settings import Setting, add, orchq_session

__all__ = ["committed_pact_dir", "pact_dir_option", "pact_file_option"]

PACT_DIR = Setting(
    "pact_dir",
    "consumer pact tests write their pacts here, cleared at the start of the run "
    "(default: a temporary directory per run)",
)
PACT_FILE = Setting(
    "pact_file",
    "pact file the provider verification replays (default: the pact shipped with orchq, "
    "contracts/pacts/orchq-client-orchestratord.json)",
    env="ORCHQ_PACT_FILE",
)


def committed_pact_dir() -> Path:
    """The pacts shipped with orchq (``contracts/pacts/``, see :mod:`harness.resources`)."""
    from harness import resources

    return resources.path(resources.PACTS)


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser, "orchq pact", PACT_DIR, metavar="DIR")
    add(parser, "orchq pact", PACT_FILE, metavar="FILE")


def pact_dir_option(config: pytest.Config) -> Path | None:
    return orchq_session(config).path(PACT_DIR)


def pact_file_option(config: pytest.Config) -> Path | None:
    return orchq_session(config).path(PACT_FILE)


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
