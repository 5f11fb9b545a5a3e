"""The acceptance lock (``requirements/accepted.lock.yaml``): which requirement texts were reviewed.

``orchq trace accept`` records, per requirement, the SHA-256 of the normalised
text its coverage was last accepted for. A requirement whose current hash
differs from the recorded one is ``suspect``: its tests may still pass, but they
were written (or reviewed) for another wording. Rules, chosen so that adding a
lock never breaks anything by itself:

* no lock file at all: nothing is suspect;
* an ID missing from the lock (a requirement added since the last accept):
  not suspect, because nothing was ever accepted for it;
* a lock that exists but cannot be read or parsed: a configuration error
  (one line naming the file, exit code 7), never "no suspects".

The file is plain YAML, written deterministically (IDs in number order, hashes
quoted so no reader takes an all-digit hash for a number), replaced atomically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.trace.index import TraceFileError, is_any_id
from harness.trace.index_file import read_text_file, write_text_atomic

__all__ = ["LOCK_VERSION", "load_lock", "parse_lock", "render_lock", "write_lock"]

LOCK_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _order(req_id: str) -> tuple[int, str]:
    return (len(req_id), req_id)


def render_lock(accepted: Mapping[str, str]) -> str:
    """Canonical lock text: byte-identical for equal content."""
    out = [
        "# Written by `orchq trace accept`; do not edit by hand.\n",
        "# Text hash per requirement whose coverage was accepted; a requirement whose\n",
        "# current hash differs is reported as `suspect` until it is accepted again.\n",
        f"version: {LOCK_VERSION}\n",
    ]
    if not accepted:
        out.append("accepted: {}\n")
        return "".join(out)
    out.append("accepted:\n")
    out.extend(f'  {req_id}: "{accepted[req_id]}"\n' for req_id in sorted(accepted, key=_order))
    return "".join(out)


def parse_lock(text: str, display: str) -> dict[str, str]:
    """Validate lock text into ``{id: sha256}``; raise :class:`TraceFileError` on any problem."""
    import yaml  # lazily: only runs when a lock exists

    def bad(message: str, line: int | None = None) -> TraceFileError:
        return TraceFileError(display, f"malformed acceptance lock: {message}", line)

    try:
        data: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise bad(f"invalid YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(data, Mapping) or set(data) != {"version", "accepted"}:
        raise bad("the top level must be a mapping with exactly version and accepted")
    if type(data["version"]) is not int or data["version"] != LOCK_VERSION:
        raise bad(f"unsupported version {data['version']!r} (expected {LOCK_VERSION})")
    accepted = data["accepted"]
    if not isinstance(accepted, Mapping):
        raise bad("accepted must be a mapping of requirement ID to sha256")
    result: dict[str, str] = {}
    for req_id, sha in accepted.items():
        if not isinstance(req_id, str) or not is_any_id(req_id):
            raise bad(f"malformed requirement ID {req_id!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise bad(f"{req_id}: sha256 must be 64 lowercase hex digits")
        result[req_id] = sha
    return result


def load_lock(path: Path, display: str) -> dict[str, str] | None:
    """The accepted hashes, or ``None`` when the lock file does not exist."""
    if not path.exists() and not path.is_symlink():
        return None
    return parse_lock(read_text_file(path, display, "acceptance lock"), display)


def write_lock(path: Path, accepted: Mapping[str, str], display: str) -> None:
    """Replace the lock atomically (temp file + rename)."""
    write_text_atomic(path, render_lock(accepted), display)
