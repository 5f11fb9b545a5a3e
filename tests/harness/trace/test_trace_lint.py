"""Every lint error: exact ``file:line: message`` on stderr, exit 7, nothing written."""

from __future__ import annotations

import pytest

from harness import exitcodes
from tests.harness.trace.trace_helpers import Project, marker


def _assert_spec_error(project: Project, command: str, expected: list[str]) -> None:
    before = project.snapshot()
    result = project.run(command)
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert result.stderr.splitlines() == expected
    assert result.stdout == ""
    assert project.snapshot() == before, "a failing command must write nothing"
    assert project.stray_files() == []


@pytest.mark.parametrize("command", ["extract", "ids"])
def test_duplicate_id(project: Project, command: str) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST do a.",
        f"- {marker(1)}The server MUST do b.",
    )
    _assert_spec_error(
        project, command, [f"{project.spec}:4: duplicate ID ORCH-0001 (first defined at line 3)"]
    )


@pytest.mark.parametrize("command", ["extract", "ids"])
def test_two_ids_in_one_sentence(project: Project, command: str) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST do a",
        f"  and {marker(2)}MUST do b.",
    )
    _assert_spec_error(
        project,
        command,
        [f"{project.spec}:4: more than one ID in one sentence: ORCH-0001, ORCH-0002"],
    )


def test_normative_sentence_without_id(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST do a.",
        "- The server SHOULD NOT do b. It MAY do c.",
    )
    _assert_spec_error(
        project,
        "extract",
        [
            f"{project.spec}:4: normative sentence (SHOULD NOT) has no ID; run `orchq spec ids`",
            f"{project.spec}:4: normative sentence (MAY) has no ID; run `orchq spec ids`",
        ],
    )


@pytest.mark.parametrize("command", ["extract", "ids"])
def test_id_without_normative_keyword(project: Project, command: str) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server must do a (lowercase is not a keyword).",
    )
    _assert_spec_error(
        project,
        command,
        [
            f"{project.spec}:3: ORCH-0001 marks a sentence with no normative keyword "
            "(MUST, MUST NOT, SHOULD, SHOULD NOT, MAY)"
        ],
    )


def test_marker_after_the_period_is_its_own_sentence(project: Project) -> None:
    project.write_spec("# Spec", "", f"The server MUST do a. {marker(1)}")
    _assert_spec_error(
        project,
        "extract",
        [
            f"{project.spec}:3: ORCH-0001 marks a sentence with no normative keyword "
            "(MUST, MUST NOT, SHOULD, SHOULD NOT, MAY)",
            f"{project.spec}:3: normative sentence (MUST) has no ID; run `orchq spec ids`",
        ],
    )


@pytest.mark.parametrize("command", ["extract", "ids"])
def test_reused_tombstone(project: Project, command: str) -> None:
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST do a.")
    assert project.run("extract").exit_code == 0
    project.write_spec("# Spec", "", f"- {marker(2)}The server MUST do b.")
    assert project.run("extract").exit_code == 0  # ORCH-0001 is now a tombstone
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(2)}The server MUST do b.",
        f"- {marker(1)}The server MUST do a again.",
    )
    _assert_spec_error(
        project,
        command,
        [
            f"{project.spec}:4: ORCH-0001 is a deleted requirement (tombstone in "
            f"{project.index}) and cannot be reused; remove the marker and run `orchq spec ids`"
        ],
    )


@pytest.mark.parametrize(
    "token", ["ORCH-12", "ORCH-00012", "orch-0012", "Orch-0012", "ORCH-0000", "ORCH_0012"]
)
@pytest.mark.parametrize("command", ["extract", "ids"])
def test_malformed_id_in_marker(project: Project, token: str, command: str) -> None:
    project.write_spec("# Spec", "", f'- <a id="{token}"></a>**{token}** — The server MUST a.')
    _assert_spec_error(
        project,
        command,
        [
            f"{project.spec}:3: malformed ID '{token}': expected ORCH- and four digits, "
            "e.g. ORCH-0012"
        ],
    )


@pytest.mark.parametrize(
    "line",
    [
        "- **ORCH-12** — The server MUST a.",
        "- The server MUST a; see orch-0001.",
        "Plain prose mentions ORCH0001 here.",
    ],
)
def test_malformed_id_outside_anchor(project: Project, line: str) -> None:
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST b.", "", line)
    result = project.run("extract")
    assert result.exit_code == exitcodes.SPEC_ERROR
    assert f"{project.spec}:5: malformed ID" in result.stderr


def test_anchor_and_label_disagree(project: Project) -> None:
    project.write_spec("# Spec", "", '- <a id="ORCH-0001"></a>**ORCH-0002** — The server MUST a.')
    _assert_spec_error(
        project, "extract", [f"{project.spec}:3: anchor ORCH-0001 and label ORCH-0002 disagree"]
    )


@pytest.mark.parametrize("fence", ["```", "````", "~~~"])
@pytest.mark.parametrize("command", ["extract", "ids"])
def test_unclosed_code_fence(project: Project, fence: str, command: str) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST do a.",
        "",
        f"{fence}python",
        "x = 1",
        "```" if fence == "~~~" else "~~~",  # the other kind does not close it
    )
    _assert_spec_error(
        project, command, [f"{project.spec}:5: unclosed code fence ({fence}) opened here"]
    )


def test_unclosed_html_comment(project: Project) -> None:
    project.write_spec(
        "# Spec", "", f"- {marker(1)}The server MUST do a.", "", "<!-- a note", "never closed"
    )
    _assert_spec_error(
        project, "extract", [f"{project.spec}:5: unclosed HTML comment (<!--) opened here"]
    )


def test_id_in_heading(project: Project) -> None:
    project.write_spec("# Spec", "", f"## {marker(1)}Admission")
    _assert_spec_error(
        project,
        "extract",
        [f"{project.spec}:3: ORCH-0001 is in a heading; IDs belong to normative sentences"],
    )


def test_reference_to_undefined_and_deleted_ids(project: Project) -> None:
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST a.", f"- {marker(2)}It MUST b.")
    assert project.run("extract").exit_code == 0
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST a.")
    assert project.run("extract").exit_code == 0  # ORCH-0002 is now a tombstone
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST a.",
        "",
        "Informative: see ORCH-0002 and [ORCH-0009](#ORCH-0009).",
    )
    _assert_spec_error(
        project,
        "extract",
        [
            f"{project.spec}:5: reference to deleted ORCH-0002",
            f"{project.spec}:5: reference to undefined ORCH-0009",
        ],
    )


def test_errors_are_sorted_by_line_and_all_reported(project: Project) -> None:
    project.write_spec(
        "# Spec",
        "",
        "- The server MUST do a.",
        f"- {marker(3)}The server MUST do b.",
        f"- {marker(3)}The server MUST do c.",
        "",
        "```",
    )
    _assert_spec_error(
        project,
        "extract",
        [
            f"{project.spec}:3: normative sentence (MUST) has no ID; run `orchq spec ids`",
            f"{project.spec}:5: duplicate ID ORCH-0003 (first defined at line 4)",
            f"{project.spec}:7: unclosed code fence (```) opened here",
        ],
    )


def test_lint_error_leaves_an_existing_index_untouched(project: Project) -> None:
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST do a.")
    assert project.run("extract").exit_code == 0
    project.write_spec("# Spec", "", f"- {marker(1)}The server MUST do a.", "- It MUST b.")
    _assert_spec_error(
        project,
        "extract",
        [f"{project.spec}:4: normative sentence (MUST) has no ID; run `orchq spec ids`"],
    )


@pytest.mark.parametrize("command", ["extract", "ids"])
def test_limit_without_its_value(project: Project, command: str) -> None:
    project.write_spec(
        "# Spec",
        "",
        f"- {marker(1)}The server MUST refuse a prompt longer than the limit with 400 "
        "`INVALID_PARAMS`.",
        f"- {marker(2)}The server MUST refuse a prompt longer than 32,768 characters.",
        f"- {marker(3)}A pool MUST NOT queue more than its `queue_capacity`.",
        f"- {marker(4)}A reply MUST take at most the maximum wait.",
        f"- {marker(5)}Each retry MUST count against that limit.",
        f"- {marker(6)}The server MUST wait at least the time ORCH-0002 gives.",
    )
    _assert_spec_error(
        project,
        command,
        [
            f"{project.spec}:3: ORCH-0001 names a limit ('longer than') without its value: "
            "state the number, or the configuration key or field that sets it",
            f"{project.spec}:6: ORCH-0004 names a limit ('at most') without its value: "
            "state the number, or the configuration key or field that sets it",
        ],
    )
