"""JSON-faithful number types for pydantic models.

Pydantic's lax mode turns ``true`` and ``"5"`` into numbers, and its strict mode
refuses ``237.0``, which JSON Schema counts as an integer. These types accept
exactly what the published JSON Schema says and nothing else.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator


def _json_int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _json_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


JsonInt = BeforeValidator(_json_int)
JsonNumber = BeforeValidator(_json_number)
"""The checks alone, for constrained fields: ``Annotated[int, Field(ge=1), JsonInt]``.

Constraints must come *before* the validator: after it (``Annotated[StrictInt,
Field(ge=1)]``) pydantic still enforces them but publishes pydantic's own
``ge``/``le`` keys in the JSON Schema instead of ``minimum``/``maximum``, so the
OpenAPI document would not declare the bounds.
"""

StrictInt = Annotated[int, JsonInt]
StrictFloat = Annotated[float, JsonNumber]
Text = Annotated[str, BeforeValidator(_json_text)]
