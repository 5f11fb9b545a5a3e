"""Which contract the fuzz suite reads, and its operations, without importing Schemathesis.

The contract is the committed ``contracts/openapi/orchqueue.yaml`` of the
checkout (or ``--orch-fuzz-contract``). An installed package has no checkout:
it then renders the document orchestratord generates, which CI proves equal
to the committed one (``orchq openapi regen --check``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

COMMITTED = Path(__file__).resolve().parents[2] / "contracts" / "openapi" / "orchqueue.yaml"


def contract_path(chosen: Path | None = None) -> Path:
    """``chosen``, else the committed file, else a rendering of the packaged app's document."""
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"{chosen}: no such OpenAPI contract (--orch-fuzz-contract)")
        return chosen
    if COMMITTED.is_file():
        return COMMITTED
    from orchestrator.api.openapi import openapi_document, render

    rendered = Path(tempfile.gettempdir()) / "orchq-fuzz-orchqueue.yaml"
    text = render(openapi_document())
    if not rendered.is_file() or rendered.read_text(encoding="utf-8") != text:
        partial = rendered.with_suffix(f".{id(text)}.tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(rendered)
    return rendered


def operations(path: Path) -> list[tuple[str, str, str]]:
    """``(operationId, method, path)`` of every operation, in document order."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for route, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                out.append((str(operation["operationId"]), method.upper(), str(route)))
    return out
