"""The index model: canonical rendering, a fast reader that agrees with YAML, strict validation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.trace import index_file
from harness.trace.index import (
    Index,
    Requirement,
    TraceFileError,
    format_id,
    id_number,
    is_valid_id,
    normalise_text,
    text_sha256,
)
from harness.trace.index_file import load_index, load_index_if_exists, parse_index, render_index

TRICKY_TEXTS = [
    "Plain MUST text.",
    "Quotes \" and ' and a backslash \\ MUST survive.",
    "Unicode — em dash, naïve, 日本語 and 🚀 MUST survive.",
    "Control \x07 bell, \x7f delete and \x85 next-line MUST be escaped.",
    "Separators \u2028 and \u2029 MUST be escaped.",
    "yes",
    "null",
    "123",
    "# not a comment: MUST stay",
    "key: value - MUST stay",
    "Trailing backslash MUST stay \\",
    "\ufeffBOM inside MUST stay",
]


def _req(
    number: int, text: str, *, deleted: bool = False, section: str = "1 S", raw: bool = False
) -> Requirement:
    text = text if raw else normalise_text(text)
    return Requirement(
        id=format_id(number),
        level="MUST",
        section=section,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        line=number,
        deleted=deleted,
    )


def _generic(text: str) -> Index:
    """What the slow, fully general path (PyYAML + validation) makes of ``text``."""
    return index_file._index_from_data(yaml.safe_load(text), "x")


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_fast_reader_agrees_with_yaml(text: str) -> None:
    index = Index.from_requirements("specs/s.md", [_req(1, text), _req(2, text, deleted=True)])
    rendered = render_index(index)
    assert parse_index(rendered) == index
    assert _generic(rendered) == index
    assert index_file._fast_index(rendered) == index  # did not fall back


@pytest.mark.parametrize(
    "text", ["line\u2028sep", "para\u2029sep", "next\x85line", "tab\there", "nul\x00", "cr\rlf\n"]
)
def test_characters_yaml_treats_specially_are_escaped(text: str) -> None:
    # Not reachable through the spec (normalisation turns them into spaces), but the
    # index format must not depend on that.
    index = Index.from_requirements("s.md", [_req(1, f"It MUST {text}", raw=True)])
    rendered = render_index(index)
    assert rendered.count("\n") == 12  # 2 comments, 3 top-level keys, 7 fields: nothing folded
    assert not any(c in rendered for c in "\u2028\u2029\x85\x00\r\t")
    assert parse_index(rendered) == index == _generic(rendered)


@pytest.mark.parametrize("section", ["", "1: Colon", '"quoted"', "#7 hash", "Ünïcode — 1.2"])
def test_sections_round_trip(section: str) -> None:
    index = Index.from_requirements("specs/s.md", [_req(3, "It MUST a.", section=section)])
    assert parse_index(render_index(index)) == index == _generic(render_index(index))


def test_empty_index_round_trips() -> None:
    index = Index(spec="specs/s.md")
    assert render_index(index).endswith("requirements: []\n")
    assert parse_index(render_index(index)) == index


def test_all_digit_hash_is_quoted() -> None:
    assert index_file._sha_scalar("1" * 64) == '"' + "1" * 64 + '"'
    assert index_file._sha_scalar("a" * 64) == "a" * 64


def test_hand_written_yaml_in_another_style_is_accepted() -> None:
    text_a = "The server MUST a."
    text = (
        "requirements:\n"
        f"- {{id: ORCH-0002, status: deleted, text: '{text_a}', sha256: {text_sha256(text_a)},\n"
        "   level: MUST, section: '1 S', line: 2}\n"
        "spec: specs/s.md\n"
        "version: 1\n"
    )
    index = parse_index(text)
    assert index.requirements == {"ORCH-0002": _req(2, text_a, deleted=True)}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.replace("version: 1", "version: 2"), "unsupported version 2"),
        (lambda s: s.replace("version: 1", "version: one"), "version must be an integer"),
        (lambda s: s.replace("level: MUST", "level: MUSTN'T"), "level must be one of"),
        (lambda s: s.replace("line: 1\n", "line: 0\n"), "line must be a positive integer"),
        (lambda s: s.replace("status: active", "status: gone"), "status must be active or"),
        (lambda s: s.replace("It MUST a.", "It MUST b."), "sha256 does not match text"),
        (lambda s: s.replace("ORCH-0002", "ORCH-0001"), "duplicate id ORCH-0001"),
        (lambda s: s.replace("ORCH-0002", "ORCH-2"), "malformed id 'ORCH-2'"),
        (lambda s: s.replace('spec: "specs/s.md"', "spec: 3"), "spec must be a non-empty"),
        (lambda s: s + "extra: 1\n", "unknown key 'extra'"),
        (lambda s: s.replace("    text:", "    txt:"), "unknown key 'txt'"),
    ],
)
def test_malformed_indexes_are_refused_with_one_line(
    mutate: Callable[[str], str], message: str
) -> None:
    index = Index.from_requirements("specs/s.md", [_req(1, "It MUST a."), _req(2, "It MUST b.")])
    text = mutate(render_index(index))
    with pytest.raises(TraceFileError) as err:
        parse_index(text, "req.yaml")
    assert str(err.value).startswith("req.yaml: malformed index: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(TraceFileError) as err:
        parse_index("version: 1\nspec: x\nrequirements: [\n  {a: 1\n", "req.yaml")
    assert str(err.value).startswith("req.yaml:")
    assert "malformed index: invalid YAML" in str(err.value)
    assert err.value.line is not None


def test_load_index_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError) as err:
        load_index(tmp_path / "nope.yaml")
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: requirements index not found"
    assert load_index_if_exists(tmp_path / "nope.yaml") is None


def test_index_queries() -> None:
    index = Index.from_requirements(
        "s.md", [_req(7, "It MUST c.", deleted=True), _req(2, "It MUST a."), _req(10000, "b MUST")]
    )
    assert list(index.requirements) == ["ORCH-0002", "ORCH-0007", "ORCH-10000"]
    assert [r.id for r in index.active()] == ["ORCH-0002", "ORCH-10000"]
    assert [r.id for r in index.tombstones()] == ["ORCH-0007"]
    assert index.is_tombstone("ORCH-0007") and not index.is_tombstone("ORCH-0002")
    assert "ORCH-0007" in index and index.get("ORCH-0001") is None
    assert index.highest_number() == 10000


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("ORCH-0001", True),
        ("ORCH-9999", True),
        ("ORCH-10000", True),
        ("ORCH-0000", False),
        ("ORCH-12", False),
        ("ORCH-00012", False),
        ("orch-0012", False),
        ("ORCH_0012", False),
        (" ORCH-0012", False),
    ],
)
def test_id_format(value: str, valid: bool) -> None:
    assert is_valid_id(value) is valid
    if valid:
        assert format_id(id_number(value)) == value


def test_normalisation() -> None:
    assert normalise_text("  a\n\tb   c ") == "a b c"
    assert normalise_text("nai\u0308ve") == "na\u00efve"  # NFC
    assert text_sha256("a  b") == text_sha256("a b")


def test_index_module_imports_cheaply() -> None:
    """The pytest plugin imports these modules at start-up: no YAML, click or rich."""
    code = (
        "import sys, harness.trace.index, harness.trace.index_file\n"
        "print(sorted(m for m in ('yaml', 'click', 'rich') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_new_file_gets_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    """Not the 0600 of the temporary file it is renamed from: reports are shared artefacts."""
    import os
    import stat

    from harness.trace.index_file import write_text_atomic

    mask = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "new.md", "x\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o640
