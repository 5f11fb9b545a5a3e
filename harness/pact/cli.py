"""``orchq pact``: regenerate the committed pacts, check them against OpenAPI, serve a stub.

``orchq pact regen [--check]`` regenerates the committed pacts from the consumer tests.

The consumer tests are the only writer of a pact: this command runs them in a
subprocess (so the FFI's global state and a test failure stay out of this
process) into a fresh temporary directory, normalises what they wrote
(:func:`harness.pact.pactfiles.normalise`) and then either replaces
``contracts/pacts/`` atomically, file by file, or with ``--check`` compares and
exits :data:`harness.exitcodes.STALE` naming each stale file.

``orchq pact check`` compares pact files with an OpenAPI document
(:mod:`harness.pact.crosscheck`): one line per finding, exit 1 on any, 2
on a file it cannot read. ``orchq pact stub`` serves a pact with the Pact stub
server (:mod:`harness.pact.stub`) until interrupted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from harness import exitcodes, resources
from harness.pact.pactfiles import normalise, stale_files, write_atomic

CONSUMER_TESTS = Path("tests") / "harness" / "pact" / "test_consumer.py"


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"orchq pact: {message}", err=True)
    sys.exit(code)


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def run_consumer_tests(root: Path, out_dir: Path) -> None:
    """Run the consumer tests of the checkout at ``root``, writing pacts into ``out_dir``."""
    tests = root / CONSUMER_TESTS
    if not tests.is_file():
        _fail(f"needs a source checkout: {tests} not found", exitcodes.USAGE)
    env = {**os.environ, "PACT_DO_NOT_TRACK": "true"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-q",
        "-p",
        "no:cacheprovider",
        "--orch-pact-dir",
        str(out_dir),
    ]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        _fail(
            f"consumer tests failed (pytest exit {done.returncode}: {last}); "
            f"run `pytest {CONSUMER_TESTS.as_posix()}` to see why",
            exitcodes.TESTS_FAILED,
        )
    if not any(out_dir.glob("*.json")):
        _fail("consumer tests wrote no pact file", exitcodes.TESTS_FAILED)


@click.group("pact")
def pact_group() -> None:
    """Pact contracts between orchq's client and OrchQueue v1 servers."""


@pact_group.command("regen")
@click.option("--check", is_flag=True, help="Exit 1 naming each stale pact file; write nothing.")
@click.option(
    "--pacts",
    "pacts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of committed pacts (default: contracts/pacts of this checkout).",
)
def regen_command(check: bool, pacts_dir: Path | None) -> None:
    """Regenerate contracts/pacts/ by running the consumer pact tests."""
    root = resources.checkout()
    if root is None:
        _fail("needs a source checkout of orchq (an editable install)", exitcodes.USAGE)
    committed = pacts_dir or root / resources.PACTS
    with tempfile.TemporaryDirectory(prefix="orchq-pacts-") as tmp:
        out_dir = Path(tmp)
        run_consumer_tests(root, out_dir)
        for generated in sorted(out_dir.glob("*.json")):
            normalise(generated)
        stale = stale_files(out_dir, committed)
        if check:
            for name in stale:
                click.echo(
                    f"{_display(committed / name, root)} is stale: run `orchq pact regen`",
                    err=True,
                )
            if stale:
                sys.exit(exitcodes.STALE)
            click.echo(f"{_display(committed, root)}: pacts are current")
            return
        fresh = {p.name for p in out_dir.glob("*.json")}
        for name in stale:
            target = committed / name
            if name in fresh:
                write_atomic(target, (out_dir / name).read_text(encoding="utf-8"))
                click.echo(f"wrote {_display(target, root)}")
            else:
                target.unlink()
                click.echo(f"removed {_display(target, root)}")
        if not stale:
            click.echo(f"{_display(committed, root)}: pacts already current")


@pact_group.command("list")
def list_command() -> None:
    """Print every pact interaction with its server group and the ORCH IDs it certifies."""
    from harness.pact.interactions import INTERACTIONS
    from harness.pact.states import LIVE_GROUPS, group_of

    for spec in INTERACTIONS:
        group = group_of(spec.states)
        where = "any target" if group in LIVE_GROUPS else f"in-process only ({group})"
        click.echo(f"{spec.description}\t{where}\t{' '.join(spec.req)}")


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


@pact_group.command("check")
@click.option(
    "--pact",
    "pacts",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="Pact file to check (repeatable; default: every pact shipped with orchq).",
)
@click.option(
    "--openapi",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="OpenAPI document (default: the one shipped with orchq).",
)
def check_command(pacts: tuple[Path, ...], openapi: Path | None) -> None:
    """Check every pact interaction against the OpenAPI document.

    Path, method and status must be declared for the operation, headers declared
    and valid, request and response bodies valid against the declared schemas.
    One line per finding naming the interaction and its requirement IDs. Exit 0
    when everything agrees, 1 on a finding, 2 when a file cannot be read.
    """
    from harness.pact.crosscheck import check_pact
    from harness.pact.openapi_document import UnreadableInput, load_openapi, load_pact_file

    try:
        api_path = openapi or resources.path(resources.OPENAPI)
        chosen = list(pacts) or sorted(resources.path(resources.PACTS).glob("*.json"))
        if not chosen:
            raise UnreadableInput(f"{resources.PACTS}: no pact file shipped with orchq")
        document = load_openapi(api_path)
        loaded = [(path, load_pact_file(path)) for path in chosen]
    except (UnreadableInput, resources.MissingResource) as exc:
        _fail(str(exc), exitcodes.USAGE)
    findings = 0
    for path, pact in loaded:
        report = check_pact(pact, document, _shown(path))
        for finding in report.findings:
            click.echo(finding.line())
        findings += len(report.findings)
        skipped = f", {len(report.skipped)} non-HTTP skipped" if report.skipped else ""
        verdict = f"{len(report.findings)} finding(s)" if report.findings else "all agree"
        click.echo(
            f"{_shown(path)}: {report.checked} interaction(s) checked against "
            f"{_shown(api_path)}{skipped}: {verdict}",
            err=True,
        )
    if findings:
        sys.exit(exitcodes.TESTS_FAILED)


@pact_group.command("stub")
@click.option(
    "--pact",
    "pact_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Pact file to serve (default: the pact shipped with orchq).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Loopback port; 0 picks a free one.",
)
@click.option(
    "--state",
    default=None,
    metavar="REGEX",
    help="Serve only interactions of provider states matching REGEX (and those without one).",
)
def stub_command(pact_file: Path | None, port: int, state: str | None) -> None:
    """Serve a pact with the Pact stub server until interrupted; the first line is its URL.

    Each request gets the response of the interaction it matches. Where several
    interactions share a request, the header X-Pact-Provider-State: <state> picks one.
    Develop a client against it, then verify orchestratord with `orchq verify`.
    """
    import signal

    from harness.pact.model import PACT_FILE
    from harness.pact.openapi_document import UnreadableInput, load_pact_file
    from harness.pact.stub import STATE_HEADER, StubError, StubServer

    try:
        path = pact_file or resources.path(resources.PACTS) / PACT_FILE
        interactions = len(load_pact_file(path)["interactions"])
        server = StubServer(path, port=port, state=state).start()
    except (UnreadableInput, StubError, resources.MissingResource) as exc:
        _fail(str(exc), exitcodes.USAGE)

    # SIGTERM unwinds like Ctrl-C: stopping from inside the handler would wait for the
    # child that the interrupted wait() below still holds.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    click.echo(f"orchq pact stub: serving {_shown(path)} at {server.url}", nl=True)
    click.echo(
        f"{interactions} interaction(s); where several share a request, send "
        f"{STATE_HEADER}: <provider state>. Ctrl-C stops it.",
        err=True,
    )
    sys.stdout.flush()
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
