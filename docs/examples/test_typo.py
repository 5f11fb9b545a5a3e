"""A test citing a requirement that does not exist (docs/troubleshooting.md): exit 7."""

from __future__ import annotations

import pytest


@pytest.mark.req("ORCH-9999")
def test_cites_an_unknown_requirement() -> None:
    assert True
