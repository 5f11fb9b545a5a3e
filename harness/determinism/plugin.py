"""pytest option of the determinism suite: where its snapshots are (loaded by the ``orchq`` plugin).

``--orch-snapshot-dir DIR`` (ini ``orchq_snapshot_dir``) holds the snapshots
the suite compares with, and ``--snapshot-update`` writes; by default the
``snapshots/`` shipped with orchq (:mod:`harness.resources`), which is the
checkout's own folder in an editable install. A team certifying its own engine
keeps its snapshots in its own repository this way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.plugin.settings import Setting, add, orchq_session

__all__ = ["SNAPSHOT_DIR", "snapshot_root"]

SNAPSHOT_DIR = Setting(
    "snapshot_dir",
    "folder of the snapshots, determinism and API shapes (default: the snapshots/ shipped "
    "with orchq)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add(parser, "orchq determinism", SNAPSHOT_DIR, metavar="DIR")


def snapshot_root(config: pytest.Config) -> Path:
    """The snapshot folder of this run."""
    chosen = orchq_session(config).path(SNAPSHOT_DIR)
    if chosen is not None:
        return chosen
    from harness import resources

    return resources.path(resources.SNAPSHOTS)
