"""The committed contract declares the request bounds the server enforces, exactly.

Found by fuzzing: pydantic published ``ge``/``le`` (not JSON Schema) for
constrained JSON-faithful ints, so Schemathesis generated ``ttl_seconds: -1979``
as *valid*; and FastAPI's float-typed ``maximum`` turned the seed bound
2**63 - 1 into 2**63, a value the server refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "openapi" / "orchqueue.yaml"
PYDANTIC_ONLY = {"ge", "le", "gt", "lt"}


def _schemas() -> dict[str, Any]:
    document = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in _keys(value)}
    if isinstance(node, list):
        return {k for value in node for k in _keys(value)}
    return set()


@pytest.mark.req("ORCH-0002")
def test_no_pydantic_only_constraint_keys() -> None:
    leaked = {name: sorted(_keys(s) & PYDANTIC_ONLY) for name, s in _schemas().items()}
    assert not {k: v for k, v in leaked.items() if v}, (
        f"ORCH-0002: bounds not in JSON Schema: {leaked}"
    )


@pytest.mark.req("ORCH-0025", "ORCH-0039", "ORCH-0040")
@pytest.mark.parametrize(
    ("model", "field", "minimum", "maximum"),
    [
        ("SessionCreate", "ttl_seconds", 1, 86_400),
        ("TaskCreate", "max_tokens", 1, 4096),
        ("TaskParams", "seed", 0, 2**63 - 1),
    ],
)
def test_integer_bounds_are_exact(model: str, field: str, minimum: int, maximum: int) -> None:
    schema = _schemas()[model]["properties"][field]
    variants = schema.get("anyOf", [schema])
    integer = next(v for v in variants if v.get("type") == "integer")
    got = (integer.get("minimum"), integer.get("maximum"))
    assert got == (minimum, maximum), (
        f"{model}.{field}: bounds {got}, the server accepts {minimum}..{maximum}"
    )
    assert all(type(b) is int for b in got), f"{model}.{field}: bounds must be integers, got {got}"
