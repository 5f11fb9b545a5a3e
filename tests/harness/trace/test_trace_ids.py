"""``orchq spec ids``: next free IDs in document order, idempotent, tombstones never reused."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from harness import exitcodes
from harness.trace.index_file import load_index
from harness.trace.spec_cli import spec_group
from tests.harness.trace.trace_helpers import Project, marker


def test_assigns_ids_in_document_order(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        "## 1 Sessions",
        "",
        "- The server MUST create sessions.",
        "- Sessions SHOULD expire. Clients MAY extend them.",
        "",
        "Informative prose carries no ID.",
        "",
        "| kind | rule |",
        "|---|---|",
        "| `X` | The server MUST NOT crash. |",
    )
    result = project.run("ids")
    assert result.exit_code == 0, result.output
    assert "assigned 4 new ID(s): ORCH-0001 .. ORCH-0004" in result.stdout
    assert project.spec_lines() == [
        "# Spec",
        "",
        "## 1 Sessions",
        "",
        f"- {marker(1)}The server MUST create sessions.",
        f"- {marker(2)}Sessions SHOULD expire. {marker(3)}Clients MAY extend them.",
        "",
        "Informative prose carries no ID.",
        "",
        "| kind | rule |",
        "|---|---|",
        f"| `X` | {marker(4)}The server MUST NOT crash. |",
        "",
    ]


def test_second_run_changes_nothing(project: Project) -> None:
    project.write_spec("# Spec", "", "- The server MUST a.", "- The server MUST b.")
    assert project.run("ids").exit_code == 0
    first = project.spec.read_bytes()
    mtime = project.spec.stat().st_mtime_ns
    result = project.run("ids")
    assert result.exit_code == 0
    assert "nothing to do" in result.stdout
    assert project.spec.read_bytes() == first
    assert project.spec.stat().st_mtime_ns == mtime, "an idempotent run must not rewrite"


def test_continues_after_the_highest_id_in_the_spec(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        "- The server MUST a.",
        f"- {marker(41)}The server MUST b.",
        f"- {marker(7)}The server MUST c.",
        "- The server MUST d.",
    )
    assert project.run("ids").exit_code == 0
    assert project.spec_lines()[2:6] == [
        f"- {marker(42)}The server MUST a.",
        f"- {marker(41)}The server MUST b.",
        f"- {marker(7)}The server MUST c.",
        f"- {marker(43)}The server MUST d.",
    ]


def test_never_reuses_a_tombstone(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST a.",
        f"- {marker(2)}The server MUST b.",
        f"- {marker(3)}The server MUST c.",
    )
    assert project.run("extract").exit_code == 0
    # Delete the two highest requirements: they become tombstones.
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST a.")
    assert project.run("extract").exit_code == 0
    index = load_index(project.index)
    assert [r.id for r in index.tombstones()] == ["ORCH-0002", "ORCH-0003"]

    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST a.", "- The server MUST e.")
    assert project.run("ids").exit_code == 0
    assert project.spec_lines()[3] == f"- {marker(4)}The server MUST e."


def test_counts_ids_of_an_index_not_yet_regenerated(project: Project) -> None:
    project.write_spec("# Spec", "", f"- {marker(5)}The server MUST a.")
    assert project.run("extract").exit_code == 0
    # ORCH-0005 is removed from the spec but the index was not extracted again.
    project.write_spec("# Spec", "", "- The server MUST b.")
    assert project.run("ids").exit_code == 0
    assert project.spec_lines()[2] == f"- {marker(6)}The server MUST b."


def test_completes_half_markers_without_renumbering(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        "- **ORCH-0003** — The server MUST a.",
        '- <a id="ORCH-0004"></a>The server MUST b.',
        "- **ORCH-0005**: The server MUST c.",
        "- The server MUST d.",
    )
    result = project.run("ids")
    assert result.exit_code == 0, result.output
    assert "completed the marker of 3 ID(s): ORCH-0003, ORCH-0004, ORCH-0005" in result.stdout
    assert project.spec_lines()[2:6] == [
        f"- {marker(3)}The server MUST a.",
        f"- {marker(4)}The server MUST b.",
        f"- {marker(5)}The server MUST c.",
        f"- {marker(6)}The server MUST d.",
    ]
    assert project.run("ids").stdout.endswith("nothing to do\n")


def test_keeps_line_endings_bom_and_permissions(project: Project) -> None:
    project.spec.parent.mkdir(parents=True)
    project.spec.write_bytes(b"\xef\xbb\xbf# Spec\r\n\r\n- The server MUST a.\r\n")
    os.chmod(project.spec, 0o640)
    assert project.run("ids").exit_code == 0
    expected = f"\ufeff# Spec\r\n\r\n- {marker(1)}The server MUST a.\r\n".encode()
    assert project.spec.read_bytes() == expected
    assert stat.S_IMODE(project.spec.stat().st_mode) == 0o640
    assert project.stray_files() == []


def test_missing_spec_is_one_line_and_exit_7(project: Project) -> None:
    result = project.run("ids")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == [f"{project.spec}: spec not found"]
    assert not project.spec.exists()


def test_malformed_index_blocks_numbering(project: Project) -> None:
    project.write_spec("# Spec", "", "- The server MUST a.")
    project.write_index("version: [1\n")
    before = project.snapshot()
    result = project.run("ids")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"{project.index}:")
    assert project.snapshot() == before


def test_defaults_to_the_project_layout(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write_spec("# Spec", "", "- The server MUST a.")
    (project.root / "sub").mkdir()
    monkeypatch.chdir(project.root / "sub")
    result = CliRunner().invoke(spec_group, ["ids"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"..{os.sep}specs{os.sep}orchestrator-spec.md: assigned 1")
    result = CliRunner().invoke(spec_group, ["extract"])
    assert result.exit_code == 0, result.output
    assert project.index.is_file()
