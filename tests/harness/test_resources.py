"""harness.resources in a checkout (the editable install the tests run from).

The wheel side (files under ``harness/_bundled``) is proven by
``tests/packaging/test_wheel.py``, which builds and installs one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import resources

ROOT = Path(__file__).resolve().parents[2]
SETUP = (ROOT / "setup.py").read_text(encoding="utf-8")


def test_a_checkout_reads_its_own_top_level_folders() -> None:
    assert resources.checkout() == ROOT
    for name in (
        resources.SPEC,
        resources.INDEX,
        resources.LOCK,
        resources.OPENAPI,
        resources.METRICS_LINT,
    ):
        assert resources.path(name) == ROOT / name
        assert resources.path(name).is_file()
    assert resources.path(resources.PACTS).is_dir()
    assert resources.path(resources.SNAPSHOTS) == ROOT / "snapshots"
    assert resources.conformance_ini() == ROOT / "harness" / "conformance" / "conformance.ini"


def test_what_setup_py_bundles_is_what_resources_reads() -> None:
    """Every resource lives in a folder setup.py ships, so the wheel has it too."""
    found = re.search(r"^BUNDLED: tuple\[str, \.\.\.\] = \(([^)]*)\)", SETUP, re.MULTILINE)
    assert found, "setup.py declares BUNDLED"
    bundled = set(re.findall(r'"([^"]+)"', found.group(1)))
    for name in (
        resources.SPEC,
        resources.INDEX,
        resources.LOCK,
        resources.OPENAPI,
        resources.PACTS,
        resources.METRICS_LINT,
        resources.SNAPSHOTS,
    ):
        assert name.split("/")[0] in bundled, name


def test_a_missing_file_is_one_clear_error() -> None:
    with pytest.raises(resources.MissingResource, match=r"nope\.yaml: not shipped with orchq"):
        resources.path("requirements/nope.yaml")
