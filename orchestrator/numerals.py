"""Numbers on the wire: non-negative integers in ASCII digits, nothing else.

``str.isdigit()`` is true for characters that ``int()`` refuses (``"²"``), and
``int()`` accepts text that no HTTP peer writes as a number (Arabic-Indic
``"٣"``, fullwidth digits, ``"1_000"``, ``"+3"``). A check with one and a parse
with the other turned a ``Last-Event-ID: ²`` into a 500. Every number the
server reads from a request, and every number the client and the harness read
from a response, goes through :func:`ascii_int`.
"""

from __future__ import annotations

MAX_DIGITS = 18
"""Digits of the largest number accepted by default: any such value fits in 63 bits."""


def ascii_int(text: str | bytes, *, max_digits: int = MAX_DIGITS) -> int | None:
    """``text`` as a non-negative integer of 1 to ``max_digits`` ASCII digits, else None.

    Spaces and tabs around the digits are allowed (HTTP's optional whitespace).
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    digits = text.strip(" \t")
    if not digits or len(digits) > max_digits or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)
