"""Pact files: canonical form, staleness, and the interaction table's own consistency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.pact.interactions import INTERACTIONS
from harness.pact.model import PACT_FILE
from harness.pact.pactfiles import (
    build_from_table,
    dumps,
    load,
    normalise,
    normalised_text,
    single_interaction_pact,
    stale_files,
)
from harness.pact.plugin import committed_pact_dir
from harness.pact.states import GROUPS, STATES, group_of
from harness.trace.index_file import load_index

COMMITTED = committed_pact_dir() / PACT_FILE


def _pact(*descriptions: str, rust: str = "0.5.12") -> dict[str, object]:
    return {
        "consumer": {"name": "c"},
        "provider": {"name": "p"},
        "interactions": [{"description": d, "type": "Synchronous/HTTP"} for d in descriptions],
        "metadata": {"pactRust": {"ffi": rust}, "pactSpecification": {"version": "4.0"}},
    }


def test_normalise_sorts_interactions_and_drops_the_ffi_stamp(tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_text(json.dumps(_pact("b", "a", rust="0.5.12")))
    two.write_text(json.dumps(_pact("a", "b", rust="9.9.9"), indent=4))
    normalise(one)
    normalise(two)
    assert one.read_bytes() == two.read_bytes()
    data = load(one)
    assert [i["description"] for i in data["interactions"]] == ["a", "b"]
    assert data["metadata"] == {"pactSpecification": {"version": "4.0"}}
    before = one.stat().st_mtime_ns
    normalise(one)
    assert one.stat().st_mtime_ns == before, "a canonical file is not rewritten"


def test_stale_files_names_changed_missing_and_extra_files(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    fresh.mkdir()
    old.mkdir()
    (fresh / "same.json").write_text(dumps(_pact("a")))
    (old / "same.json").write_text(normalised_text(fresh / "same.json"))
    (fresh / "changed.json").write_text(dumps(_pact("a", "b")))
    (old / "changed.json").write_text(normalised_text(fresh / "same.json"))
    (fresh / "new.json").write_text(dumps(_pact("a")))
    (old / "gone.json").write_text(dumps(_pact("a")))
    assert stale_files(fresh, old) == ["changed.json", "gone.json", "new.json"]


def test_committed_pact_is_canonical_and_complete() -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    assert text == normalised_text(COMMITTED), "run `orchq pact regen`"
    recorded = [i["description"] for i in load(COMMITTED)["interactions"]]
    assert recorded == sorted(spec.description for spec in INTERACTIONS), "run `orchq pact regen`"


def test_single_interaction_copy(tmp_path: Path) -> None:
    target = tmp_path / "one.json"
    assert single_interaction_pact(COMMITTED, "check health", target)
    assert [i["description"] for i in load(target)["interactions"]] == ["check health"]
    assert not single_interaction_pact(COMMITTED, "no such interaction", tmp_path / "x.json")


def test_table_cites_known_ids_and_known_states() -> None:
    index = load_index(committed_pact_dir().parents[1] / "requirements" / "index.yaml")
    descriptions = [spec.description for spec in INTERACTIONS]
    assert len(descriptions) == len(set(descriptions)), "descriptions must be unique"
    for spec in INTERACTIONS:
        assert spec.req, f"{spec.description!r} cites no ORCH ID"
        assert all(req in index for req in spec.req), f"{spec.description!r}: unknown IDs"
        assert set(spec.states) <= set(STATES), f"{spec.description!r}: unknown state"
        assert group_of(spec.states) in GROUPS


def test_incompatible_states_are_refused() -> None:
    with pytest.raises(ValueError, match="incompatible"):
        group_of(("an API token is required", "a running task exists"))


def test_the_table_builds_the_committed_pact(tmp_path: Path) -> None:
    """A fast stand-in for ``orchq pact regen --check``: the table and the file agree."""
    built = build_from_table(tmp_path)
    assert built.read_bytes() == COMMITTED.read_bytes(), "run `orchq pact regen`"
