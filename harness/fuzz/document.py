"""Which contract the fuzz suite reads, and its operations, without importing Schemathesis.

The contract is ``contracts/openapi/orchqueue.yaml`` as shipped with orchq
(:mod:`harness.resources`), or ``--orch-fuzz-contract``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def contract_path(chosen: Path | None = None) -> Path:
    """``chosen``, else the OpenAPI document shipped with orchq."""
    if chosen is not None:
        if not chosen.is_file():
            raise FileNotFoundError(f"{chosen}: no such OpenAPI contract (--orch-fuzz-contract)")
        return chosen
    from harness import resources

    return resources.path(resources.OPENAPI)


def operations(path: Path) -> list[tuple[str, str, str]]:
    """``(operationId, method, path)`` of every operation, in document order."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for route, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                out.append((str(operation["operationId"]), method.upper(), str(route)))
    return out
