"""orchq installed changes nothing for a pytest run that does not use it.

A foreign project, with its own ``@pytest.mark.req("JIRA-123")``, its own ``contract``
marker, its own fixtures under names orchq once used (``make_session``) and
``--strict-markers``, runs three ways: in a venv without orchq (the same pytest), in
this environment where orchq is installed, and here with ``-p no:orchq``. Outcomes per
test, exit codes and the markers it sees must be identical, also with orchq's
environment variables set (they may never delete a file or fail an unrelated run).
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.packaging.venvs import clean_env, make_venv, run

pytestmark = pytest.mark.slow

PROJECT = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        addopts = "--strict-markers -p no:cacheprovider"
        markers = [
            "req(ticket): the tracker ticket a test covers",
            "contract: our own API contract tests",
        ]
        """,
    "tests/conftest.py": """
        import pytest

        @pytest.fixture
        def make_session():
            return "our session"

        @pytest.fixture
        def target():
            return "our target"
        """,
    "tests/test_app.py": """
        import pytest

        @pytest.mark.req("JIRA-123")
        def test_ticket(make_session, target):
            assert (make_session, target) == ("our session", "our target")

        @pytest.mark.req("not even an ID")
        @pytest.mark.contract
        def test_contract():
            pass

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_known_bug():
            assert False

        def test_fails_on_purpose():
            assert 1 == 2
        """,
}
EXPECTED = {
    "test_ticket": "passed",
    "test_contract": "passed",
    "test_skipped": "skipped",
    "test_known_bug": "skipped",
    "test_fails_on_purpose": "failed",
}


def _project(base: Path) -> Path:
    for name, text in PROJECT.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return base


def _outcomes(junit: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.attrib["name"]] = {"failure": "failed", "error": "error"}.get(
            kinds[0] if kinds else "", "skipped" if kinds else "passed"
        )
    return found


def _run(
    python: Path, project: Path, name: str, *args: str, **env: str
) -> tuple[int, dict[str, str], list[str]]:
    junit = project / f"{name}.xml"
    done = run(
        [str(python), "-m", "pytest", f"--junitxml={junit}", *args], project, clean_env(**env)
    )
    assert done.returncode in (0, 1), (
        f"{name}: exit {done.returncode}\n{done.stdout[-3000:]}{done.stderr}"
    )
    markers = run([str(python), "-m", "pytest", "--markers", *args], project, clean_env(**env))
    ours = [
        line
        for line in markers.stdout.splitlines()
        if line.startswith(("@pytest.mark.req", "@pytest.mark.contract"))
    ]
    return done.returncode, _outcomes(junit), ours


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with this pytest and nothing of orchq."""
    bindir = make_venv(tmp_path_factory.mktemp("bare") / "venv", f"pytest=={pytest.__version__}")
    return bindir / "python"


def test_the_same_run_with_and_without_orchq(bare_python: Path, tmp_path: Path) -> None:
    import sys

    project = _project(tmp_path / "foreign")
    without = _run(bare_python, project, "without")
    assert without[0] == 1 and without[1] == EXPECTED, without
    assert _run(Path(sys.executable), project, "with") == without
    assert _run(Path(sys.executable), project, "disabled", "-p", "no:orchq") == without


def test_orchq_environment_variables_change_nothing(bare_python: Path, tmp_path: Path) -> None:
    import sys

    project = _project(tmp_path / "foreign")
    pacts = tmp_path / "pacts"
    pacts.mkdir()
    keep = pacts / "theirs.json"
    keep.write_text("{}\n", encoding="utf-8")
    env = {
        "ORCHQ_PACT_DIR": str(pacts),
        "ORCHQ_FUZZ_EXAMPLES": "not a number",
        "ORCHQ_TARGET": "http://127.0.0.1:9",
        "ORCHQ_TOKEN": "t",
    }
    without = _run(bare_python, project, "without", **env)
    assert _run(Path(sys.executable), project, "with", **env) == without
    assert keep.exists(), "an environment variable made orchq delete a file"


def test_an_undeclared_req_marker_fails_strict_markers_with_or_without_orchq(
    bare_python: Path, tmp_path: Path
) -> None:
    """orchq registers ``req`` only where the project opts in to traceability."""
    import sys

    project = tmp_path / "strict"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n", encoding="utf-8")
    (project / "tests" / "test_x.py").write_text(
        'import pytest\n\n@pytest.mark.req("JIRA-1")\ndef test_x():\n    pass\n', encoding="utf-8"
    )
    bare = run([str(bare_python), "-m", "pytest", "-p", "no:cacheprovider"], project, clean_env())
    mine = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], project, clean_env())
    assert bare.returncode == mine.returncode == 2, (bare.stdout, mine.stdout)
    assert "'req' not found in `markers` configuration option" in mine.stdout
