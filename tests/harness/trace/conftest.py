"""Fixtures for the spec/index self-tests (helpers live in ``trace_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.trace.trace_helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project: ``specs/orchestrator-spec.md`` and ``requirements/index.yaml`` paths."""
    return Project(
        root=tmp_path,
        spec=tmp_path / "specs" / "orchestrator-spec.md",
        index=tmp_path / "requirements" / "index.yaml",
    )
