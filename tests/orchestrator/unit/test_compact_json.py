"""The hot-path JSON encoder: the standard library's values, faster, and total.

Spec: none (an encoding helper; the wire formats it serves are tested where
they are produced).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orchestrator.compact_json import dumps, dumps_canonical, dumps_text

VALUES: list[Any] = [
    {},
    {"task_id": "task_0192", "queue_position": 0, "seed": 2**63 - 1, "stream_url": "/v1/t"},
    {"index": 3, "text": ' ¡hola! \u202e\u0000\n\t"\\', "token_id": 1234},
    {"kind": "WORKER_RESET", "message": "x" * 300, "details": None},
    {"temperature": 0.7, "top_p": 1e-05, "big": 1e300, "neg": -0.0, "flag": True},
    {"nested": {"list": [1, "two", None, [3.5]], "empty": []}},
    {"huge": 2**70, "tuple": (1, 2)},
]


@pytest.mark.parametrize("value", VALUES)
def test_same_json_value_as_the_standard_library_in_compact_form(value: Any) -> None:
    text = dumps_text(value)

    assert json.loads(text) == json.loads(json.dumps(value))  # floats round-trip exactly
    assert dumps(value) == text.encode()
    outside_strings = re.sub(r'"(?:\\.|[^"\\])*"', "", text)
    assert not any(c.isspace() for c in outside_strings), text  # compact separators


def test_text_utf8_cannot_carry_falls_back_to_ascii_escapes() -> None:
    value = {"text": "a\ud800b", "é": "ok"}

    text = dumps_text(value)

    assert text == '{"text":"a\\ud800b","\\u00e9":"ok"}'
    text.encode()  # storable in SQLite, sendable as UTF-8
    assert dumps(value) == text.encode()
    assert json.loads(text) == value


def test_canonical_sorts_the_keys_of_every_object() -> None:
    value = {"b": [{"z": 1, "a": {"y": 2, "x": 3}}], "a": None}

    assert dumps_canonical(value) == '{"a":null,"b":[{"a":{"x":3,"y":2},"z":1}]}'
    assert dumps_canonical({"z": 1, "a": 2}) == dumps_canonical({"a": 2, "z": 1})
    assert dumps_canonical({"s": "\udc80"}) == '{"s":"\\udc80"}'


def _keys_sorted_everywhere(text: str) -> bool:
    in_order: list[bool] = []

    def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        in_order.append(keys == sorted(keys))
        return dict(pairs)

    json.loads(text, object_pairs_hook=check)
    return all(in_order)


@pytest.mark.parametrize(
    "value",
    [
        *VALUES,
        {"top_p": 1.0, "seed": 7, "determinism": "strict", "temperature": 0.5},  # flat, unsorted
        {"z": (2, 1), "a": 1},  # a tuple in a flat-looking object
        {"z": {"b": 1, "a": 2}, "a": [{"d": 1, "c": 2}]},
    ],
)
def test_canonical_is_the_same_value_with_every_objects_keys_sorted(value: Any) -> None:
    text = dumps_canonical(value)

    assert json.loads(text) == json.loads(json.dumps(value))
    assert _keys_sorted_everywhere(text), text
    shuffled = dict(reversed(list(value.items())))
    assert dumps_canonical(shuffled) == text
