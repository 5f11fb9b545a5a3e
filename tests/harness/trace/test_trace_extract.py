"""``orchq spec extract``: a deterministic index, tombstones, ``--check``, clean failures."""

from __future__ import annotations

import hashlib
import os

import pytest
import yaml

from harness import exitcodes
from harness.trace.index_file import load_index
from tests.harness.trace.trace_helpers import Project, marker


def _three(project: Project) -> None:
    project.write_spec(
        "# OrchQueue",
        "",
        "## 4 Tasks",
        "",
        "### 4.2 Admission",
        "",
        f"- {marker(1)}The server MUST answer `202`.",
        f"- {marker(2)}The server SHOULD NOT",
        "  block. Rationale without keyword.",
        "",
        "## 5 Stream",
        "",
        f"{marker(3)}A client MAY resume.",
    )


def test_writes_the_index(project: Project) -> None:
    _three(project)
    result = project.run("extract")
    assert result.exit_code == 0, result.output
    assert f"{project.index}: wrote, 3 requirements, 0 tombstone(s)" in result.stdout
    data = yaml.safe_load(project.index.read_text(encoding="utf-8"))
    assert data == {
        "version": 1,
        "spec": "specs/orchestrator-spec.md",
        "requirements": [
            {
                "id": "ORCH-0001",
                "level": "MUST",
                "line": 7,
                "section": "4.2 Admission",
                "sha256": hashlib.sha256(b"The server MUST answer `202`.").hexdigest(),
                "status": "active",
                "text": "The server MUST answer `202`.",
            },
            {
                "id": "ORCH-0002",
                "level": "SHOULD NOT",
                "line": 8,
                "section": "4.2 Admission",
                "sha256": hashlib.sha256(b"The server SHOULD NOT block.").hexdigest(),
                "status": "active",
                "text": "The server SHOULD NOT block.",
            },
            {
                "id": "ORCH-0003",
                "level": "MAY",
                "line": 13,
                "section": "5 Stream",
                "sha256": hashlib.sha256(b"A client MAY resume.").hexdigest(),
                "status": "active",
                "text": "A client MAY resume.",
            },
        ],
    }


def test_layout_is_versioned_sorted_and_free_of_timestamps(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    lines = project.index.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if not line.startswith("#")]
    assert body[:3] == ["version: 1", 'spec: "specs/orchestrator-spec.md"', "requirements:"]
    keys = [line.split(":")[0].strip(" -") for line in body[3:10]]
    assert keys == sorted(keys) == ["id", "level", "line", "section", "sha256", "status", "text"]


def test_second_run_is_byte_identical(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    first = project.index.read_bytes()
    mtime = project.index.stat().st_mtime_ns
    result = project.run("extract")
    assert result.exit_code == 0
    assert f"{project.index}: unchanged, 3 requirements" in result.stdout
    assert project.index.read_bytes() == first
    assert project.index.stat().st_mtime_ns == mtime
    assert project.stray_files() == []


def test_ids_sort_numerically(project: Project) -> None:
    project.write_spec(
        f"- {marker(10000)}It MUST a.",
        f"- {marker(9999)}It MUST b.",
        f"- {marker(12)}It MUST c.",
    )
    assert project.run("extract").exit_code == 0
    assert list(load_index(project.index).requirements) == ["ORCH-0012", "ORCH-9999", "ORCH-10000"]


def test_spec_path_is_repo_relative_posix(project: Project) -> None:
    (project.root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    project.spec = project.root / "docs" / "specs" / "orq.md"
    project.index = project.root / "gen" / "requirements" / "index.yaml"
    project.write_spec(f"- {marker(1)}It MUST a.")
    assert project.run("extract").exit_code == 0
    assert load_index(project.index).spec == "docs/specs/orq.md"


def test_deleted_requirements_stay_as_tombstones(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    before = load_index(project.index).requirements["ORCH-0002"]
    project.write_spec("# OrchQueue", "", f"- {marker(1)}The server MUST answer `202`.")
    for _ in range(2):  # and they stay on every later run
        result = project.run("extract")
        assert result.exit_code == 0, result.output
        assert "1 requirements, 2 tombstone(s)" in result.stdout
        index = load_index(project.index)
        assert [r.id for r in index.active()] == ["ORCH-0001"]
        tomb = index.requirements["ORCH-0002"]
        assert tomb.deleted
        assert (tomb.text, tomb.sha256, tomb.level, tomb.section, tomb.line) == (
            before.text,
            before.sha256,
            before.level,
            before.section,
            before.line,
        )
    assert "status: deleted" in project.index.read_text(encoding="utf-8")


def test_check_passes_when_up_to_date(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.OK
    assert result.stdout == f"{project.index}: up to date (3 requirements)\n"


def test_check_fails_and_names_the_ids_that_differ(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    project.write_spec(
        "# OrchQueue",
        "",
        "## 4 Tasks",
        "",
        "### 4.2 Admission",
        "",
        f"- {marker(1)}The server MUST answer `202 Accepted`.",
        "",
        f"- {marker(4)}The server MUST log.",
    )
    before = project.snapshot()
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.STALE
    assert result.stderr.splitlines() == [
        f"{project.index}: stale; run `orchq spec extract` (4 difference(s)):",
        "  ORCH-0001: changed text",
        "  ORCH-0002: deleted",
        "  ORCH-0003: deleted",
        "  ORCH-0004: new",
    ]
    assert project.snapshot() == before, "--check writes nothing"


def test_check_reports_moved_lines(project: Project) -> None:
    _three(project)
    assert project.run("extract").exit_code == 0
    lines = project.spec.read_text(encoding="utf-8")
    project.spec.write_text("\n" + lines, encoding="utf-8")
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.STALE
    assert "  ORCH-0001: changed line 7 -> 8" in result.stderr.splitlines()


def test_check_fails_when_the_index_is_missing_or_hand_formatted(project: Project) -> None:
    _three(project)
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.STALE
    assert result.stderr == f"{project.index}: missing; run `orchq spec extract`\n"
    assert not project.index.exists()

    assert project.run("extract").exit_code == 0
    data = yaml.safe_load(project.index.read_text(encoding="utf-8"))
    project.write_index(yaml.safe_dump(data))  # same content, another emitter's layout
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.STALE
    assert "  layout differs from what `orchq spec extract` writes" in result.stderr


def test_check_still_lints(project: Project) -> None:
    project.write_spec("- The server MUST a.")
    result = project.run("extract", "--check")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr == (
        f"{project.spec}:1: normative sentence (MUST) has no ID; run `orchq spec ids`\n"
    )


def test_missing_spec(project: Project) -> None:
    project.write_index("not touched\n")
    before = project.snapshot()
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == [f"{project.spec}: spec not found"]
    assert project.snapshot() == before


@pytest.mark.parametrize(
    ("index_text", "message"),
    [
        ("version: 1\nspec: [unclosed\n", ":3: malformed index: invalid YAML: "),
        ("- just\n- a list\n", ": malformed index: the top level must be a mapping"),
        ("version: 2\nspec: s.md\nrequirements: []\n", ": malformed index: unsupported version 2"),
        (
            "version: 1\nspec: s.md\nrequirements:\n  - id: ORCH-1\n",
            ": malformed index: requirements[0]: missing key 'level'",
        ),
    ],
)
def test_malformed_index(project: Project, index_text: str, message: str) -> None:
    _three(project)
    project.write_index(index_text)
    before = project.snapshot()
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{project.index}{message}")
    assert project.snapshot() == before


def test_spec_that_is_not_utf8(project: Project) -> None:
    project.spec.parent.mkdir(parents=True)
    project.spec.write_bytes(b"# Spec\n\n- The server MUST \xff.\n")
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == [
        f"{project.spec}:3: cannot read spec: not valid UTF-8 (byte 0xff)"
    ]
    assert not project.index.exists()


def test_spec_that_is_a_directory(project: Project) -> None:
    project.spec.mkdir(parents=True)
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == [f"{project.spec}: cannot read spec: it is a directory"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_spec_without_read_permission(project: Project) -> None:
    _three(project)
    os.chmod(project.spec, 0)
    try:
        result = project.run("extract")
    finally:
        os.chmod(project.spec, 0o644)
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == [f"{project.spec}: cannot read spec: Permission denied"]


def test_unwritable_index_location(project: Project) -> None:
    _three(project)
    project.index.parent.parent.mkdir(parents=True, exist_ok=True)
    project.index.parent.write_text("a file where the directory should be\n")
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{project.index}: cannot write: ")
