"""Compact JSON for the hot paths: admission responses, stream events, stored parameters.

pydantic-core's serializer (pydantic's own, so no new package) encodes these
small dicts five to seven times faster than the standard library's encoder,
and an admitted one-token task encodes five of them (docs/design/performance.md,
``compact_json``). The JSON values are the same: compact separators, keys in insertion
order, non-ASCII text as UTF-8.

Text that UTF-8 cannot carry (an unpaired surrogate, which ``json.loads``
makes of an engine's ``"\\ud800"``) is refused by pydantic-core. Such values
fall back to the standard library with ASCII escapes, so encoding never fails
and what it returns can always be stored in SQLite and sent on the wire.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

__all__ = [
    "dumps",
    "dumps_canonical",
    "dumps_text",
    "stdlib_dumps_canonical",
    "stdlib_dumps_text",
]

_ascii_dumps = json.JSONEncoder(separators=(",", ":")).encode
_stdlib_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_stdlib_sorted_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, sort_keys=True
).encode


def stdlib_dumps_text(value: Any) -> str:
    """What :func:`dumps_text` returns, from the standard library's encoder."""
    text = _stdlib_dumps(value)
    try:
        text.encode()
    except UnicodeEncodeError:
        return _ascii_dumps(value)
    return text


def stdlib_dumps_canonical(value: Any) -> str:
    """What :func:`dumps_canonical` returns, from the standard library's encoder."""
    text = _stdlib_sorted_dumps(value)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return to_json(value)
    except PydanticSerializationError:
        return _ascii_dumps(value).encode()


def dumps_text(value: Any) -> str:
    """``value`` as compact JSON text."""
    try:
        return to_json(value).decode()
    except PydanticSerializationError:
        return _ascii_dumps(value)


_CONTAINERS = (dict, list, tuple)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _sorted(item) if isinstance(item, _CONTAINERS) else item
            for key, item in sorted(value.items())
        }
    if isinstance(value, list | tuple):
        return [_sorted(item) if isinstance(item, _CONTAINERS) else item for item in value]
    return value


def dumps_canonical(value: Any) -> str:
    """``value`` as compact JSON text with the keys of every object sorted.

    For stored JSON columns: equal values are stored as equal text. A flat
    object (a task's parameters, stored at every admission) is sorted in one
    step, without the recursive walk.
    """
    if type(value) is dict:
        items = sorted(value.items())
        for _, item in items:
            if isinstance(item, _CONTAINERS):
                break
        else:
            return dumps_text(dict(items))
    return dumps_text(_sorted(value))
