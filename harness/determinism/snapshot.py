"""Determinism snapshots: a syrupy extension that pins an engine's strict tokens.

One snapshot file per engine and engine version, under the top-level
``snapshots/`` folder of the pytest root (``snapshots/<suite>/<test module>/
<test>[<engine>@<engine_version>].json``): syrupy's single-file layout needs the
test module's name as the directory and the test's name in the file name, or
discovery of unused snapshots and duplicate basenames break; the engine and its
version are the snapshot's name. Each file is readable, byte-stable JSON (sorted
keys, indent 2, one trailing newline) holding, per case, the seed, sampler
profile, prompt and the first 32 token texts and ids.

Timing is recorded but never compared: it lives in the document's top-level
``timing`` field, and :meth:`DeterminismSnapshotExtension.matches` (and the
diff shown on failure) drop that field before comparing. So a slower or faster
run neither fails nor rewrites a snapshot: syrupy only writes when ``matches``
says the snapshot differs (a token drifted, a case was added) or it is missing,
and then the timing of that run is stored with it. ``--snapshot-update``
rewrites drifted snapshots; writes go to a temporary file and are renamed, so
an interrupted run never leaves half a snapshot.

Unused-snapshot detection skips the engine-keyed files (``<test>[engine@version]
.json``): a run sees only the engine its target serves, so it cannot tell
whether another engine's snapshot is obsolete, and must neither fail on it nor
delete it under ``--snapshot-update``. Other stray files in the folder are still
reported (and removed by ``--snapshot-update``) as syrupy does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syrupy.data import SnapshotCollections
from syrupy.extensions.json import JSONSnapshotExtension

from harness.determinism.probe import Output

if TYPE_CHECKING:
    from syrupy.data import SnapshotCollection
    from syrupy.location import PyTestLocation
    from syrupy.types import PropertyFilter, PropertyMatcher, SerializableData, SerializedData

__all__ = [
    "NOT_COMPARED",
    "SNAPSHOT_CASES",
    "SNAPSHOT_ROOT",
    "Case",
    "DeterminismSnapshotExtension",
    "RepositorySnapshotExtension",
    "describe_drift",
    "documents_match",
    "render_document",
    "snapshot_document",
    "snapshot_name",
]

SNAPSHOT_ROOT = "snapshots"
"""Top-level folder of the repository that holds every snapshot (shipped with orchq)."""
NOT_COMPARED = "timing"
"""The one top-level field of a snapshot document that comparisons ignore."""
SNAPSHOT_TOKENS = 32
_ENGINE_KEYED = re.compile(r"[A-Za-z_][\w.]*\[[^\[\]@]+@[^\[\]]+\]\.json")
"""File names of engine-keyed snapshots: ``test_name[engine@engine_version].json``."""

Case = tuple[str, int, str]
"""``(prompt, seed, sampler_profile_version)`` of one pinned completion."""

_PROMPT = "Write a haiku about determinism."
SNAPSHOT_CASES: tuple[Case, ...] = (
    *((_PROMPT, seed, "v1") for seed in range(8)),
    (_PROMPT, 7, "v2"),
    (_PROMPT, 2**63 - 1, "v1"),
    ("Explain queues to a five-year-old, in one sentence.", 42, "v1"),
    ("unicode: ünïcødé ✓ 日本語", 42, "v1"),
)
"""Cases pinned per engine: seeds 0-7, the largest seed, another profile, other prompts."""


def snapshot_name(engine: str, engine_version: str) -> str:
    """The snapshot's name (the file's ``[...]`` part): one per engine and version."""
    return f"{engine}@{engine_version}"


def snapshot_document(
    outputs: Sequence[Output], *, tokens: int = SNAPSHOT_TOKENS
) -> dict[str, Any]:
    """The snapshot of one engine: its cases in a stable order, timing set apart.

    All outputs must come from one engine and version (ORCH-0117 names them in
    ``started``); the caller checks that and picks the snapshot name from them.
    """
    engines = sorted({(o.engine, o.engine_version) for o in outputs})
    if len(engines) != 1:
        raise ValueError(f"a snapshot holds one engine and version, got {engines}")
    engine, engine_version = engines[0]
    ordered = sorted(outputs, key=lambda o: (o.prompt, o.seed, o.sampler_profile_version))
    return {
        "engine": engine,
        "engine_version": engine_version,
        "tokens_per_case": tokens,
        "cases": [
            {
                "prompt": o.prompt,
                "seed": o.seed,
                "sampler_profile_version": o.sampler_profile_version,
                "determinism": "strict",
                "texts": o.texts[:tokens],
                "token_ids": o.token_ids[:tokens],
            }
            for o in ordered
        ],
        NOT_COMPARED: {
            "note": "recorded, never compared",
            "cases_ms": [round(o.seconds * 1000, 1) for o in ordered],
        },
    }


def documents_match(a: str | None, b: str | None) -> bool:
    """Whether two snapshot texts agree on everything but :data:`NOT_COMPARED`."""
    return a is not None and b is not None and bool(_compared(a) == _compared(b))


def _compared(text: SerializableData | None) -> Any:
    """The parsed document without its :data:`NOT_COMPARED` field (or the raw text)."""
    if not isinstance(text, str):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict):
        document.pop(NOT_COMPARED, None)
    return document


def render_document(document: Any) -> str:
    """The byte-stable text of a snapshot document (sorted keys, indent 2, final newline)."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class RepositorySnapshotExtension(JSONSnapshotExtension):
    """Single-file JSON snapshots (syrupy's public JSON extension: text files, ``.json``)
    in orchq's top-level ``snapshots/`` folder, written atomically."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """``<snapshot folder>/<parent package>/<test module>``, e.g.
        ``snapshots/conformance/test_determinism`` for the packaged suite; the folder is
        ``--orch-snapshot-dir``, else orchq's own (:mod:`harness.determinism.plugin`)."""
        from harness.determinism.plugin import snapshot_root

        root = snapshot_root(test_location.item.config)
        parent = Path(test_location.filepath).parent.name
        return str(root / parent / test_location.basename)

    @classmethod
    def write_snapshot_collection(
        cls,
        *,
        snapshot_collection: SnapshotCollection,
        name_order: dict[str, int] | None = None,
    ) -> None:
        from harness.trace.index_file import write_text_atomic

        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"can't write a {type(data).__name__} snapshot")
        write_text_atomic(Path(snapshot_collection.location), data)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        """Syrupy's discovery minus the engine-keyed files (see the module docstring): in
        every extension of ours, since syrupy may discover a module's folder through the
        extension of another module's test (xdist workers)."""
        kept = SnapshotCollections()
        for collection in super().discover_snapshots(
            test_location=test_location, ignore_extensions=ignore_extensions
        ):
            if not _ENGINE_KEYED.fullmatch(Path(collection.location).name):
                kept.add(collection)
        return kept


class DeterminismSnapshotExtension(RepositorySnapshotExtension):
    """Determinism snapshots with our own canonical rendering; timing is not compared."""

    def serialize(
        self,
        data: SerializableData,
        *,
        exclude: PropertyFilter | None = None,
        include: PropertyFilter | None = None,
        matcher: PropertyMatcher | None = None,
    ) -> SerializedData:
        if not isinstance(data, dict):
            raise TypeError(f"a determinism snapshot is a mapping, got {type(data).__name__}")
        return render_document(data)

    def matches(
        self, *, serialized_data: SerializableData, snapshot_data: SerializableData
    ) -> bool:
        return bool(_compared(serialized_data) == _compared(snapshot_data))

    def diff_lines(
        self, serialized_data: SerializedData, snapshot_data: SerializedData
    ) -> Iterator[str]:
        received, stored = _compared(serialized_data), _compared(snapshot_data)
        yield from super().diff_lines(
            render_document(received) if isinstance(received, dict) else serialized_data,
            render_document(stored) if isinstance(stored, dict) else snapshot_data,
        )


def describe_drift(stored: str | None, document: dict[str, Any], limit: int = 8) -> list[str]:
    """What differs between a stored snapshot and a fresh document, case by case.

    Only the compared fields count; the result names the seed, profile and prompt
    of each drifted case and its first differing token, so a failure says *which*
    output moved instead of showing a wall of JSON.
    """
    if stored is None:
        return ["no snapshot stored yet"]
    old = _compared(stored)
    if not isinstance(old, dict):
        return ["the stored snapshot is not a JSON object"]
    new = _compared(render_document(document))
    problems: list[str] = []
    for field in ("engine", "engine_version", "tokens_per_case"):
        if old.get(field) != new.get(field):
            problems.append(f"{field}: stored {old.get(field)!r}, got {new.get(field)!r}")

    def keyed(doc: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
        cases = doc.get("cases") or []
        return {
            (c.get("prompt"), c.get("seed"), c.get("sampler_profile_version")): c
            for c in cases
            if isinstance(c, dict)
        }

    old_cases, new_cases = keyed(old), keyed(new)
    for key in sorted(set(old_cases) | set(new_cases), key=repr):
        prompt, seed, profile = key
        label = f"seed {seed} (profile {profile}, prompt {prompt!r})"
        if key not in new_cases:
            problems.append(f"{label}: stored but not produced")
            continue
        if key not in old_cases:
            problems.append(f"{label}: produced but not stored")
            continue
        a, b = old_cases[key], new_cases[key]
        pairs_a = list(zip(a.get("token_ids") or [], a.get("texts") or [], strict=False))
        pairs_b = list(zip(b.get("token_ids") or [], b.get("texts") or [], strict=False))
        if pairs_a == pairs_b and a == b:
            continue
        index = next(
            (i for i, (x, y) in enumerate(zip(pairs_a, pairs_b, strict=False)) if x != y),
            min(len(pairs_a), len(pairs_b)),
        )
        was = pairs_a[index] if index < len(pairs_a) else None
        got = pairs_b[index] if index < len(pairs_b) else None
        problems.append(f"{label}: token {index} stored {was!r}, got {got!r}")
    if len(problems) > limit:
        problems = [*problems[:limit], f"... ({len(problems) - limit} more)"]
    return problems
