"""A project's orchq configuration (harness.project), read alike by the CLI and the plugin."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.exitcodes import SPEC_ERROR, STALE
from harness.project import DEFAULTS, ProjectError, find_project, read_pyproject
from harness.trace.spec_cli import spec_group

pytest_plugins = ["pytester"]

SPEC = "# Ledger\n\n## 1 Accounts\n\n- An account MUST start at zero.\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_defaults_are_orchqueues(tmp_path: Path) -> None:
    project = find_project(tmp_path)
    assert project.root == tmp_path.resolve()
    assert project.get("prefix") == "ORCH"
    assert project.path("index") == tmp_path.resolve() / DEFAULTS["index"]
    assert project.title == "OrchQueue v1"


def test_tool_orchq_and_the_ini_twins_with_the_ini_winning(tmp_path: Path) -> None:
    _write(
        tmp_path / "pyproject.toml",
        """
        [tool.orchq]
        prefix = "LEDGER"
        index = "reqs/ledger.yaml"
        title = "Ledger"

        [tool.pytest.ini_options]
        orchq_title = "Ledger service"
        """,
    )
    project = find_project(tmp_path / "sub" / "dir")  # like git: from any sub-directory
    assert project.root == tmp_path.resolve()
    assert project.scheme.prefix == "LEDGER"
    assert project.path("index") == tmp_path.resolve() / "reqs" / "ledger.yaml"
    assert project.path("spec") == tmp_path.resolve() / DEFAULTS["spec"]
    assert project.title == "Ledger service"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('prefix = "ledger"', "expected an uppercase letter"),
        ("index = 3", "index must be a non-empty string"),
        ('colour = "red"', "unknown key 'colour'"),
    ],
)
def test_a_bad_key_is_one_line_naming_it(tmp_path: Path, table: str, message: str) -> None:
    _write(tmp_path / "pyproject.toml", f"[tool.orchq]\n{table}\n")
    with pytest.raises(ProjectError, match=message):
        read_pyproject(tmp_path / "pyproject.toml")


def test_the_spec_commands_use_the_projects_prefix_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path / "pyproject.toml",
        '[tool.orchq]\nprefix = "LEDGER"\nspec = "ledger.md"\nindex = "ledger.yaml"\n',
    )
    _write(tmp_path / "ledger.md", SPEC)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ids = runner.invoke(spec_group, ["ids"], catch_exceptions=False)
    assert ids.exit_code == 0, ids.output
    assert "assigned 1 new ID(s): LEDGER-0001 .. LEDGER-0001" in ids.output
    extract = runner.invoke(spec_group, ["extract"], catch_exceptions=False)
    assert extract.exit_code == 0, extract.output
    assert "id: LEDGER-0001" in (tmp_path / "ledger.yaml").read_text(encoding="utf-8")
    assert not (tmp_path / "requirements").exists()


def test_extract_check_with_an_index_checks_the_spec_that_index_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--index X`` alone: the spec is X's ``spec:``, not the project's default spec."""
    other = tmp_path / "other"
    _write(other / "pyproject.toml", "[project]\nname = 'other'\n")
    spec = _write(
        other / "docs" / "requirements.md",
        SPEC.replace("- An", '- <a id="ORCH-0001"></a>**ORCH-0001** — An'),
    )
    runner = CliRunner()
    index = other / "reqs" / "api.yaml"
    made = runner.invoke(
        spec_group, ["extract", "--spec", str(spec), "--index", str(index)], catch_exceptions=False
    )
    assert made.exit_code == 0, made.output
    assert 'spec: "docs/requirements.md"' in index.read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no project here: the default spec does not exist
    check = runner.invoke(spec_group, ["extract", "--check", "--index", str(index)])
    assert check.exit_code == 0, check.output
    spec.write_text(spec.read_text(encoding="utf-8").replace("zero", "one"), encoding="utf-8")
    stale = runner.invoke(spec_group, ["extract", "--check", "--index", str(index)])
    assert stale.exit_code == STALE, stale.output


def test_the_plugin_reads_the_project_and_refuses_a_broken_one(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.orchq]\nprefix = "LEDGER"\nindex = "missing.yaml"\n')
    pytester.makepyfile('import pytest\n\n@pytest.mark.req("ORCH-0001")\ndef test_a():\n    pass\n')
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only")
    assert result.ret == SPEC_ERROR  # opted in through [tool.orchq]: the index is needed
    result.stdout.fnmatch_lines(["*missing.yaml: requirements index not found*"])
    pytester.makepyprojecttoml('[tool.orchq]\nprefix = "lower"\nindex = "x.yaml"\n')
    broken = pytester.runpytest("-p", "no:cacheprovider", "--collect-only")
    assert broken.ret == SPEC_ERROR
    broken.stdout.fnmatch_lines(["*prefix 'lower': expected an uppercase letter*"])
