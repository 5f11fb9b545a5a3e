"""``orchq runs``: register a run definition and run one to its end (spec section 12).

``orchq runs start NAME`` runs a registered definition on a server (``--target``)
or on an embedded orchestratord (its ``--config`` names the ``definitions_dir``),
waits for the run to end, and prints each step's state and output in the
definition's order: with ``--seed`` and strict steps, the same lines every time.
Exit 0 when the run completed, 1 when it failed or was aborted, 2 when the
command line or the server cannot be used.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import yaml

from harness import exitcodes
from harness.orchestrator_cli import (
    _fail,
    fail_on_client_error,
    start_embedded,
    target_option,
    token_option,
)

POLL_S = 0.02


@click.group("runs")
def runs_group() -> None:
    """Multi-step runs: register definitions, start runs and follow them."""


def _input(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: a JSON integer, boolean or array (a ``list`` input) as such, anything
    else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--input")
    try:
        parsed = json.loads(value)
    except ValueError:
        return key, value
    return key, parsed if isinstance(parsed, bool | int | list) else value


@runs_group.command("register")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@target_option
@token_option
def register_command(file: Path, url: str | None, token: str | None) -> None:
    """Register the definition in FILE (JSON or YAML) on the server at --target."""
    from orchestrator.client import OrchClient, OrchClientError

    if url is None:
        _fail("runs register needs --target (an embedded server forgets it)", exitcodes.USAGE)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{file}: not a definition document: {exc}", exitcodes.USAGE)
    try:
        with OrchClient(url, token=token) as client:
            registered = client.register_definition(document)
    except OrchClientError as exc:
        fail_on_client_error(exc)
    click.echo(f"orchq: registered {registered.name}@{registered.version} ({registered.digest})")


@runs_group.command("start")
@click.argument("definition")
@click.option(
    "--version", "version", default="1", show_default=True, help="The definition's version."
)
@click.option("--input", "inputs", multiple=True, metavar="KEY=VALUE", help="A run input.")
@click.option("--seed", type=click.IntRange(0), default=None, help="The run's seed.")
@click.option(
    "--max-parallel",
    type=click.IntRange(1, 64),
    default=None,
    help="Steps of the run running at once (the server's default: 4).",
)
@target_option
@token_option
@click.option("--config", "config_path", default=None, help="Config of the embedded server.")
def start_command(
    definition: str,
    version: str,
    inputs: tuple[str, ...],
    seed: int | None,
    max_parallel: int | None,
    url: str | None,
    token: str | None,
    config_path: str | None,
) -> None:
    """Run DEFINITION to its end and print each step's state and output."""
    from orchestrator.client import OrchClient, OrchClientError
    from orchestrator.vocabulary import RUN_TERMINAL_STATES

    given = dict(_input(text) for text in inputs)
    with ExitStack() as stack:
        if url is None:
            url = start_embedded(stack, config_path, "orchq-runs-")
        try:
            client = stack.enter_context(OrchClient(url, token=token))
            session = client.create_session(ttl_seconds=3600).session_id
            run = client.create_run(
                session, definition, version, inputs=given, seed=seed, max_parallel=max_parallel
            )
            while run.state not in RUN_TERMINAL_STATES:
                time.sleep(POLL_S)
                run = client.get_run(run.run_id)
        except OrchClientError as exc:
            fail_on_client_error(exc)
    width = max(len(step.step_id) for step in run.steps)
    for step in run.steps:
        detail = json.dumps(step.output) if step.output is not None else ""
        if step.error is not None:
            detail = f"{step.error.kind}: {step.error.message}"
        click.echo(f"{step.step_id:<{width}}  {step.state:<9}  {detail}".rstrip())
    summary = f"orchq: run {run.run_id} {run.state}: {definition}@{version}, seed {run.seed}"
    if run.state != "completed":
        _fail(summary.removeprefix("orchq: "), exitcodes.TESTS_FAILED)
    click.echo(summary, err=True)
