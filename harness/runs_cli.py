"""``orchq runs``: register a run definition and run one to its end (spec section 12).

``orchq runs start NAME`` runs a registered definition on a server (``--target``)
or on an embedded orchestratord (its ``--config`` names the ``definitions_dir``),
waits for the run to end or to pause at a checkpoint, and prints each step's
state and output in the definition's order: with ``--seed`` and strict steps,
the same lines every time. ``orchq runs approvals`` lists checkpoints and
``orchq runs decide`` decides one, then follows the run the same way. Exit 0
when the run completed or waits for a decision on a server, 1 when it failed or
was aborted (or paused on an embedded server, which cannot wait for anyone), 2
when the command line or the server cannot be used.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from orchestrator.vocabulary import RUN_TERMINAL_STATES

if TYPE_CHECKING:
    from orchestrator.client import OrchClient
    from orchestrator.schemas import Approval, Run

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
@click.option("--as", "actor", default=None, help="Who starts the run (the audit log's actor).")
def start_command(
    definition: str,
    version: str,
    inputs: tuple[str, ...],
    seed: int | None,
    max_parallel: int | None,
    url: str | None,
    token: str | None,
    config_path: str | None,
    actor: str | None,
) -> None:
    """Run DEFINITION until it ends or waits at a checkpoint; print each step's state."""
    from orchestrator.client import OrchClient, OrchClientError

    given = dict(_input(text) for text in inputs)
    embedded = url is None
    with ExitStack() as stack:
        if url is None:
            url = start_embedded(stack, config_path, "orchq-runs-")
        try:
            client = stack.enter_context(OrchClient(url, token=token))
            session = client.create_session(ttl_seconds=3600).session_id
            run = client.create_run(
                session,
                definition,
                version,
                inputs=given,
                seed=seed,
                max_parallel=max_parallel,
                actor=actor,
            )
            run = _follow(client, run)
            pending = _pending(client, run)
        except OrchClientError as exc:
            fail_on_client_error(exc)
    _report(run, pending, embedded=embedded)


def _follow(client: OrchClient, run: Run) -> Run:
    """Poll the run until it ended or waits for a decision."""
    while run.state not in RUN_TERMINAL_STATES and run.state != "awaiting_approval":
        time.sleep(POLL_S)
        run = client.get_run(run.run_id)
    return run


def _pending(client: OrchClient, run: Run) -> list[Approval]:
    if run.state != "awaiting_approval":
        return []
    return client.list_approvals(run_id=run.run_id, state="pending", limit=100).approvals


def _report(run: Run, pending: list[Approval], *, embedded: bool) -> None:
    """Each step's line, each pending checkpoint's, then the summary and the exit code."""
    width = max(len(step.step_id) for step in run.steps)
    for step in run.steps:
        detail = json.dumps(step.output) if step.output is not None else ""
        if step.error is not None:
            detail = f"{step.error.kind}: {step.error.message}"
        if len(step.attempts) > 1:
            detail = f"{detail}  [{len(step.attempts)} attempts]"
        click.echo(f"{step.step_id:<{width}}  {step.state:<9}  {detail}".rstrip())
    for checkpoint in pending:
        output = "" if checkpoint.output is None else f"  {json.dumps(checkpoint.output)}"
        decisions = "|".join(checkpoint.decisions)
        click.echo(f"checkpoint {checkpoint.checkpoint_id} ({decisions}){output}")
    summary = (
        f"orchq: run {run.run_id} {run.state.replace('_', ' ')}: "
        f"{run.definition}@{run.version}, seed {run.seed}"
    )
    if run.state == "awaiting_approval" and embedded:
        _fail(
            summary.removeprefix("orchq: ")
            + "; an embedded server cannot wait for a decision: run it on a server (--target)",
            exitcodes.TESTS_FAILED,
        )
    if run.state not in ("completed", "awaiting_approval"):
        _fail(summary.removeprefix("orchq: "), exitcodes.TESTS_FAILED)
    click.echo(summary, err=True)


@runs_group.command("approvals")
@click.option("--run", "run_id", default=None, help="Only the checkpoints of this run.")
@click.option(
    "--state",
    type=click.Choice(["pending", "decided", "cancelled"]),
    default="pending",
    show_default=True,
    help="Which checkpoints.",
)
@target_option
@token_option
def approvals_command(run_id: str | None, state: str, url: str | None, token: str | None) -> None:
    """List the checkpoints of runs on the server at --target, oldest first."""
    from orchestrator.client import OrchClient, OrchClientError

    if url is None:
        _fail("runs approvals needs --target (an embedded server has no runs)", exitcodes.USAGE)
    listed: list[Approval] = []
    try:
        with OrchClient(url, token=token) as client:
            cursor: str | None = None
            while True:
                page = client.list_approvals(state=state, run_id=run_id, cursor=cursor)
                listed += page.approvals
                cursor = page.next_cursor
                if cursor is None:
                    break
    except OrchClientError as exc:
        fail_on_client_error(exc)
    for checkpoint in listed:
        decided = (
            f"  {checkpoint.decision} by {checkpoint.decided_by}"
            if checkpoint.decision is not None
            else ""
        )
        click.echo(
            f"{checkpoint.run_id}  {checkpoint.checkpoint_id}  {checkpoint.state}  "
            f"{'|'.join(checkpoint.decisions)}{decided}"
        )
    click.echo(f"orchq: {len(listed)} {state} checkpoint(s)", err=True)


@runs_group.command("decide")
@click.argument("checkpoint_id")
@click.argument("decision", type=click.Choice(["continue", "retry", "skip", "abort"]))
@click.option("--by", "decided_by", required=True, help="Who decides (the audit log's actor).")
@click.option(
    "--run",
    "run_id",
    default=None,
    help="The run of the checkpoint; needed only when several runs wait at this id.",
)
@click.option("--prompt", default=None, help="retry: the prompt of the step's next attempts.")
@click.option(
    "--input", "inputs", multiple=True, metavar="KEY=VALUE", help="retry: a run input to change."
)
@target_option
@token_option
def decide_command(
    checkpoint_id: str,
    decision: str,
    decided_by: str,
    run_id: str | None,
    prompt: str | None,
    inputs: tuple[str, ...],
    url: str | None,
    token: str | None,
) -> None:
    """Decide CHECKPOINT_ID, then follow its run until it ends or waits again."""
    from orchestrator.client import OrchClient, OrchClientError

    if url is None:
        _fail("runs decide needs --target (an embedded server has no runs)", exitcodes.USAGE)
    given = dict(_input(text) for text in inputs) if inputs else None
    try:
        with OrchClient(url, token=token) as client:
            if run_id is None:
                run_id = _run_waiting_at(client, checkpoint_id)
            client.decide_checkpoint(
                run_id, checkpoint_id, decision, decided_by, prompt=prompt, inputs=given
            )
            run = _follow(client, client.get_run(run_id))
            pending = _pending(client, run)
    except OrchClientError as exc:
        fail_on_client_error(exc)
    _report(run, pending, embedded=False)


def _run_waiting_at(client: OrchClient, checkpoint_id: str) -> str:
    """The one run with a pending checkpoint ``checkpoint_id``; a usage error otherwise."""
    runs: list[str] = []
    cursor: str | None = None
    while True:
        page = client.list_approvals(state="pending", cursor=cursor)
        runs += [a.run_id for a in page.approvals if a.checkpoint_id == checkpoint_id]
        cursor = page.next_cursor
        if cursor is None:
            break
    if not runs:
        _fail(
            f"no run waits at checkpoint {checkpoint_id!r} (a decided checkpoint takes no "
            "other decision)",
            exitcodes.USAGE,
        )
    if len(runs) > 1:
        _fail(
            f"{len(runs)} runs wait at checkpoint {checkpoint_id!r}: name one with --run",
            exitcodes.USAGE,
        )
    return runs[0]
