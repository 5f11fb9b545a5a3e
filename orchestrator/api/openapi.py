"""The committed OpenAPI document: generated from the app, byte-stable.

``contracts/openapi/orchqueue.yaml`` is what contract and fuzz tests read, so it
must equal what the code serves: ``orchq openapi regen --check`` proves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.api.app import create_app
from orchestrator.config import Config

DEFAULT_PATH = Path("contracts/openapi/orchqueue.yaml")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app, without touching a database."""
    app = create_app(Config(database=":memory:"))
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return yaml.safe_dump(
        document, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )
