"""Writing, normalising and comparing pact files so ``contracts/pacts/`` stays byte-stable.

The FFI writes interactions in the order tests happened to run and stamps its own
versions into ``metadata.pactRust``; neither belongs in a committed contract.
:func:`normalise` sorts interactions by description (then states), sorts every
key, drops the FFI version stamp and writes atomically (temp file, then
``os.replace``). :func:`write_with_retry` merges one test's pact into a shared
directory: under xdist, concurrent merges of one file can exhaust the FFI's own
three lock attempts and raise ``RuntimeError``, which would lose the interaction.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pact import Pact

__all__ = [
    "build_from_table",
    "dumps",
    "load",
    "normalise",
    "normalised_text",
    "single_interaction_pact",
    "stale_files",
    "write_atomic",
    "write_with_retry",
]

WRITE_TRIES = 20
_JITTER_S = (0.01, 0.1)


def write_with_retry(pact: Pact, directory: Path) -> None:
    """Merge ``pact`` into ``directory`` (``overwrite=False``), retrying lock contention."""
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, WRITE_TRIES + 1):
        try:
            pact.write_file(directory, overwrite=False)
            return
        except RuntimeError:
            if attempt == WRITE_TRIES:
                raise
            time.sleep(random.uniform(*_JITTER_S))


def load(path: Path) -> dict[str, Any]:
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise ValueError(f"{path}: not a pact file (no interactions list)")
    return data


def _interaction_key(interaction: dict[str, Any]) -> tuple[str, str]:
    states = [str(state.get("name", "")) for state in interaction.get("providerStates", [])]
    return (str(interaction.get("description", "")), "\x00".join(states))


def normalised(data: dict[str, Any]) -> dict[str, Any]:
    """A copy with interactions sorted and the FFI's version stamp removed."""
    out = dict(data)
    out["interactions"] = sorted(data["interactions"], key=_interaction_key)
    metadata = dict(data.get("metadata", {}))
    metadata.pop("pactRust", None)
    out["metadata"] = metadata
    return out


def dumps(data: dict[str, Any]) -> str:
    """The canonical text: sorted keys, two-space indent, UTF-8 as is, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def normalised_text(path: Path) -> str:
    return dumps(normalised(load(path)))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a committed file is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def normalise(path: Path) -> None:
    """Rewrite ``path`` in canonical form (a no-op on a canonical file)."""
    text = normalised_text(path)
    if path.read_text(encoding="utf-8") != text:
        write_atomic(path, text)


def stale_files(generated: Path, committed: Path) -> list[str]:
    """Names of pact files that differ between two directories, or exist in only one."""
    fresh = {p.name: p for p in generated.glob("*.json")}
    old = {p.name: p for p in committed.glob("*.json")} if committed.is_dir() else {}
    stale: list[str] = []
    for name in sorted(fresh.keys() | old.keys()):
        same = (
            name in fresh
            and name in old
            and normalised_text(fresh[name]) == old[name].read_text(encoding="utf-8")
        )
        if not same:
            stale.append(name)
    return stale


def single_interaction_pact(source: Path, description: str, target: Path) -> bool:
    """Write a copy of ``source`` holding only the interaction ``description``.

    Returns ``False`` when ``source`` has no such interaction. Verifying one
    interaction per file keeps each provider check (and its ORCH IDs) separate.
    """
    data = load(source)
    chosen = [i for i in data["interactions"] if i.get("description") == description]
    if not chosen:
        return False
    write_atomic(target, dumps({**data, "interactions": chosen}))
    return True


def build_from_table(directory: Path) -> Path:
    """Write the pact of the whole interaction table into ``directory``, without a mock server.

    The consumer tests record exactly this (they declare the same specs), so it
    stands in for the committed pact where there is no checkout.
    """
    from pact import Pact

    from harness.pact.interactions import INTERACTIONS
    from harness.pact.model import CONSUMER, PACT_FILE, PROVIDER, add_interaction

    pact = Pact(CONSUMER, PROVIDER)
    for spec in INTERACTIONS:
        add_interaction(pact, spec)
    pact.write_file(directory, overwrite=True)
    path = directory / PACT_FILE
    normalise(path)
    return path
