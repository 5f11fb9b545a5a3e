"""``orchq determinism run``: count unique strict outputs per seed and replica, exit 1 on drift.

Without ``--target`` it starts the embedded orchestratord (real HTTP on an
ephemeral loopback port, a temporary database, the config loader of ``orchq
run``) and stops it afterwards. Exit codes (:mod:`harness.exitcodes`): 0 when
every seed gave exactly one output on the required replicas and distinct seeds
diverged (>= 15/16 of them); 1 on any divergence, missing replica coverage or a
task that did not complete or sent no ``started``; 2 for a bad command line, a
bad config or a target that cannot be reached or refuses us (one line, never a
traceback).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import exitcodes
from harness.determinism.probe import (
    DEFAULT_PROMPT,
    Output,
    ProbeError,
    Sweep,
    ready_replicas,
    run_strict,
    sweep,
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"orchq: {message}", err=True)
    sys.exit(code)


@click.group("determinism")
def determinism_group() -> None:
    """Seeded determinism checks of an OrchQueue v1 server."""


@determinism_group.command("run")
@click.option(
    "--seeds",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    help="Distinct seeds (0 .. N-1).",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Distinct replicas each seed must run on.",
)
@click.option(
    "--tokens",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="max_tokens of every task.",
)
@click.option("--prompt", default=DEFAULT_PROMPT, show_default=True)
@click.option("--pool", default="default", show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Tasks in flight at once.",
)
@click.option(
    "--target",
    default=None,
    metavar="URL",
    envvar="ORCHQ_TARGET",
    help="A running OrchQueue v1 server (env ORCHQ_TARGET); without it, an embedded orchestratord.",
)
@click.option("--token", default=None, envvar="ORCHQ_TOKEN", help="Bearer token for --target.")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Config of the embedded server (ignored with --target).",
)
@click.option(
    "--snapshot-write",
    "snapshot_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the engine's determinism snapshot (the suite's cases) here.",
)
def run_command(
    seeds: int,
    replicas: int,
    tokens: int,
    prompt: str,
    pool: str,
    concurrency: int,
    target: str | None,
    token: str | None,
    config_path: str | None,
    snapshot_path: Path | None,
) -> None:
    """Run every seed in strict mode on several replicas; exit 1 unless each gives one output."""
    from harness.orchestrator_cli import start_embedded
    from orchestrator.client import OrchClientError, OrchError, OrchUnreachable

    out = Console()
    err = Console(stderr=True)
    with ExitStack() as stack:
        if target is None:
            target = start_embedded(stack, config_path, "orchq-det-")
        try:
            result, snapshot = asyncio.run(
                _probe(
                    target,
                    token,
                    err,
                    seeds=seeds,
                    replicas=replicas,
                    tokens=tokens,
                    prompt=prompt,
                    pool=pool,
                    concurrency=concurrency,
                    snapshot=snapshot_path is not None,
                )
            )
        except OrchUnreachable as exc:
            _fail(str(exc), exitcodes.USAGE)
        except ProbeError as exc:
            _fail(f"a strict task could not be counted: {exc}", exitcodes.TESTS_FAILED)
        except OrchError as exc:
            _fail(f"{target} refused the probe: {str(exc).splitlines()[0]}", exitcodes.USAGE)
        except OrchClientError as exc:
            _fail(str(exc).splitlines()[0], exitcodes.USAGE)
    _print(out, result)
    if snapshot_path is not None:
        _write_snapshot(snapshot_path, snapshot, err)
    problems = result.replica_problems() + result.control_problems()
    for problem in problems:
        err.print(f"orchq: {problem}", style="red", highlight=False)
    if problems:
        sys.exit(exitcodes.TESTS_FAILED)
    err.print(f"orchq: deterministic: {result.summary()}", style="green", highlight=False)


async def _probe(
    url: str,
    token: str | None,
    err: Console,
    *,
    seeds: int,
    replicas: int,
    tokens: int,
    prompt: str,
    pool: str,
    concurrency: int,
    snapshot: bool,
) -> tuple[Sweep, list[Output]]:
    from harness.determinism.snapshot import SNAPSHOT_CASES
    from orchestrator.client import AsyncOrchClient

    async with AsyncOrchClient(url, token=token, timeout=60) as client:
        await ready_replicas(client, pool)  # unreachable / refused: fail before any display
        with Progress(
            TextColumn("[bold]determinism[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            bar = progress.add_task("runs", total=seeds * replicas)

            def tick(done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total)

            result = await sweep(
                client,
                seeds=range(seeds),
                replicas=replicas,
                tokens=tokens,
                prompt=prompt,
                pool=pool,
                concurrency=concurrency,
                progress=tick,
            )
        cases: list[Output] = []
        if snapshot:
            sid = (await client.create_session(ttl_seconds=600)).session_id
            for case_prompt, seed, profile in SNAPSHOT_CASES:
                cases.append(
                    await run_strict(
                        client,
                        sid,
                        seed,
                        prompt=case_prompt,
                        tokens=32,
                        pool=pool,
                        sampler_profile_version=profile,
                    )
                )
    return result, cases


def _print(console: Console, result: Sweep) -> None:
    replicas = sorted(set(result.replicas_ready) | set(result.replicas_observed))
    seeds = Table(title="unique outputs per seed", title_justify="left")
    seeds.add_column("seed", justify="right")
    seeds.add_column("runs", justify="right")
    seeds.add_column("unique", justify="right")
    for replica in replicas:
        seeds.add_column(f"{replica} runs/unique", justify="right")
    seeds.add_column("digest(s)")
    for row in result.rows:
        bad = row.unique != 1 or len(row.replicas) < result.replicas_required
        seeds.add_row(
            str(row.seed),
            str(len(row.outputs)),
            str(row.unique),
            *(
                f"{sum(o.replica_id == r for o in row.outputs)}/{row.unique_on(r)}"
                for r in replicas
            ),
            " ".join(row.digests),
            style="red" if bad else None,
        )
    console.print(seeds)
    per_replica = Table(title="per replica", title_justify="left")
    for name in ("replica", "ready", "runs", "seeds", "seeds with >1 output"):
        per_replica.add_column(name, justify="left" if name == "replica" else "right")
    for replica in replicas:
        rows = [row for row in result.rows if replica in row.replicas]
        per_replica.add_row(
            replica,
            "yes" if replica in result.replicas_ready else "no",
            str(sum(o.replica_id == replica for row in result.rows for o in row.outputs)),
            str(len(rows)),
            str(sum(row.unique_on(replica) > 1 for row in rows)),
        )
    console.print(per_replica)
    console.print(result.summary(), highlight=False)


def _write_snapshot(path: Path, cases: list[Output], err: Console) -> None:
    """Write the snapshot document; leave the file alone when only its timing would change."""
    from harness.determinism.snapshot import documents_match, render_document, snapshot_document
    from harness.trace.index import TraceFileError
    from harness.trace.index_file import write_text_atomic

    text = render_document(snapshot_document(cases))
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror}", exitcodes.USAGE)
    if documents_match(current, text):
        err.print(f"orchq: snapshot {path} unchanged")
        return
    try:
        write_text_atomic(path, text)
    except TraceFileError as exc:
        _fail(str(exc), exitcodes.USAGE)
    err.print(f"orchq: wrote snapshot {path}")
