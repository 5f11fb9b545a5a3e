"""The committed spec and index of this repository: clean, numbered, up to date.

This is the same gate CI applies with ``orchq spec extract --check``; having it
as a test makes a forgotten ``orchq spec extract`` fail ``pytest`` too.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness import exitcodes
from harness.trace.index import LEVELS
from harness.trace.index_file import load_index
from harness.trace.spec import parse_spec
from harness.trace.spec_cli import spec_group
from harness.trace.spec_lint import lint

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "specs" / "orchestrator-spec.md"
INDEX = ROOT / "requirements" / "index.yaml"


def test_spec_lints_clean_with_canonical_markers() -> None:
    parsed = parse_spec(SPEC.read_text(encoding="utf-8"), str(SPEC))
    assert lint(parsed, load_index(INDEX)) == []
    assert parsed.marker_fixes == [], "run `orchq spec ids` to complete markers"
    assert len(parsed.requirements) > 60
    assert {r.level for r in parsed.requirements} == set(LEVELS)


def test_index_is_up_to_date() -> None:
    result = CliRunner().invoke(
        spec_group, ["extract", "--check", "--spec", str(SPEC), "--index", str(INDEX)]
    )
    assert result.exit_code == exitcodes.OK, result.output


def test_index_records_the_spec_path() -> None:
    assert load_index(INDEX).spec == "specs/orchestrator-spec.md"


def test_every_section_is_numbered() -> None:
    parsed = parse_spec(SPEC.read_text(encoding="utf-8"), str(SPEC))
    for req in parsed.requirements:
        number = req.section.split(" ", 1)[0]
        assert number.replace(".", "").isdigit(), (req.id, req.section)


def test_spec_group_is_mounted_on_orchq() -> None:
    import click

    from harness.cli import main

    with click.Context(main) as ctx:
        assert main.get_command(ctx, "spec") is spec_group
