"""The orchestrator's commands: ``orchq serve``, ``orchq run`` and ``orchq openapi``.

Every failure a user can cause (a bad config, an unreachable server, a stale
document) ends in one line on stderr and a documented exit code, never a
traceback.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from harness import exitcodes
from orchestrator.config import Config, ConfigError, load_config, load_definitions
from orchestrator.store import Store, StoreError

if TYPE_CHECKING:
    from harness.trace.index import Index


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"orchq: {message}", err=True)
    sys.exit(code)


def _load(config_path: str | None, db: str | None) -> Config:
    try:
        return load_config(config_path, database=db)
    except ConfigError as exc:
        _fail(f"bad config: {exc}", exitcodes.USAGE)


def _refuse_children_registered_nowhere(config: Config, store: Store) -> None:
    """End the command in one line, before a server starts, when a definition of the
    config's folder runs a child that neither the folder nor ``store`` holds (ORCH-0315)."""
    from orchestrator.runtime.definitions import registered_in

    try:
        load_definitions(config, registered_in(store))
    except ConfigError as exc:
        _fail(f"bad config: {exc}", exitcodes.USAGE)


def fail_on_client_error(exc: Exception) -> NoReturn:
    """End a command on a client error, in one line.

    Like ``orchq verify --target``: a server we cannot talk to (unreachable, refusing
    our credentials, not OrchQueue v1) is a usage problem (2); a server that answered
    and refused or failed the work is 1.
    """
    from orchestrator.client import OrchError, OrchProtocolError, OrchUnreachable

    unusable = isinstance(exc, OrchUnreachable | OrchProtocolError) or (
        isinstance(exc, OrchError) and exc.status == 401
    )
    _fail(str(exc).splitlines()[0], exitcodes.USAGE if unusable else exitcodes.TESTS_FAILED)


def start_embedded(stack: ExitStack, config_path: str | None, prefix: str) -> str:
    """Start orchestratord for one command on a temporary database; return its URL.

    The server and its directory live as long as ``stack``. A config that does
    not load, or a server that does not start, ends the command with one line
    and exit 2.
    """
    from orchestrator.server import ServerThread

    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))
    config = _load(config_path, str(Path(workdir) / "orchq.db"))
    store = Store(config.database)
    try:
        _refuse_children_registered_nowhere(config, store)
    finally:
        store.close()
    try:
        server = stack.enter_context(ServerThread(config))
    except RuntimeError as exc:
        _fail(str(exc), exitcodes.USAGE)
    click.echo(f"orchq: embedded orchestratord on {server.url}", err=True)
    return server.url


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed on start).",
)
@click.option("--db", "db", default=None, help="SQLite database file (overrides the config).")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="YAML config file; without one, the embedded default (pool 'default', 2 mock replicas).",
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
@click.option(
    "--lock-wait",
    "lock_wait",
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    type=click.FloatRange(0, 86400),
    help="Wait this long for another server to release the database (a rolling restart).",
)
def serve_command(
    host: str,
    port: int,
    db: str | None,
    config_path: str | None,
    access_log: bool,
    lock_wait: float,
) -> None:
    """Run orchestratord, the OrchQueue v1 reference orchestrator.

    One server per database: a second one on a database in use exits with
    status 2 (after --lock-wait seconds), naming the database.
    """
    from orchestrator.server import run, serve
    from orchestrator.store.lock import DatabaseLock

    config = _load(config_path, db)
    lock = DatabaseLock(config.database)
    try:
        lock.acquire(wait_s=lock_wait)  # before the database is opened: it may be migrated
        store = Store(config.database)  # refuse an unusable database before binding
    except StoreError as exc:
        _fail(str(exc), exitcodes.USAGE)
    try:
        _refuse_children_registered_nowhere(config, store)
    finally:
        store.close()

    def ready(url: str) -> None:
        pools = ", ".join(f"{p.pool_id} ({len(p.replicas)} replicas)" for p in config.pools)
        click.echo(f"orchq: serving OrchQueue v1 on {url} (database {config.database}; {pools})")

    try:
        run(
            serve(
                config,
                host=host,
                port=port,
                access_log=access_log,
                on_ready=ready,
                database_lock=lock,
            )
        )
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", exitcodes.USAGE)
    except RuntimeError as exc:
        _fail(str(exc), exitcodes.USAGE)
    except KeyboardInterrupt:
        pass


target_option = click.option(
    "--target",
    "url",
    default=None,
    metavar="URL",
    envvar="ORCHQ_TARGET",
    help="A running OrchQueue v1 server (env ORCHQ_TARGET); without it, an embedded "
    "orchestratord is started.",
)
"""``--target URL`` of the commands that talk to a server or start an embedded one."""
token_option = click.option(
    "--token", default=None, envvar="ORCHQ_TOKEN", help="Bearer token for --target."
)


@click.command("run")
@click.argument("prompt")
@target_option
@token_option
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed; implies --strict.")
@click.option(
    "--strict/--best-effort",
    default=None,
    help="Determinism mode (default: strict with a seed, best effort without).",
)
@click.option("--max-tokens", type=click.IntRange(1), default=32, show_default=True)
@click.option("--priority", type=click.Choice(["interactive", "batch"]), default="interactive")
@click.option("--pool", default="default", show_default=True)
@click.option("--config", "config_path", default=None, help="Config of the embedded server.")
def run_command(
    prompt: str,
    url: str | None,
    token: str | None,
    seed: int | None,
    strict: bool | None,
    max_tokens: int,
    priority: str,
    pool: str,
    config_path: str | None,
) -> None:
    """Admit one task and stream its tokens to stdout.

    Exit 0 when the task completed, 1 when it was refused or failed, 2 when
    the server cannot be used (unreachable, wrong token, not OrchQueue v1).
    Without --target this starts orchestratord for the run (real HTTP on an
    ephemeral loopback port, a temporary database) and stops it afterwards.
    """
    from orchestrator.client import OrchClient, OrchClientError

    determinism = (
        "strict" if (strict if strict is not None else seed is not None) else "best_effort"
    )
    if determinism == "strict" and seed is None:
        _fail("--strict needs --seed", exitcodes.USAGE)
    with ExitStack() as stack:
        if url is None:
            url = start_embedded(stack, config_path, "orchq-run-")
        try:
            client = stack.enter_context(OrchClient(url, token=token))
            session = client.create_session(ttl_seconds=600)
            admitted = client.submit_task(
                session.session_id,
                prompt,
                priority=priority,  # type: ignore[arg-type]
                pool=pool,
                max_tokens=max_tokens,
                seed=seed,
                determinism=determinism,  # type: ignore[arg-type]
            )
            outcome = None
            started = None
            for event in client.stream(admitted.task_id):
                if event.event == "started":
                    started = event.data
                elif event.event == "token":
                    click.echo(event.data["text"], nl=False)
                else:
                    outcome = event
            click.echo()
        except OrchClientError as exc:
            fail_on_client_error(exc)
        where = (
            f"replica {started['replica_id']} ({started['engine']} {started['engine_version']})"
            if started
            else "no replica"
        )
        if outcome is not None and outcome.event == "end":
            click.echo(
                f"orchq: task {admitted.task_id} completed: {outcome.data['tokens_out']} tokens, "
                f"seed {admitted.seed}, {determinism}, {where}",
                err=True,
            )
            return
        kind = outcome.data.get("kind", "?") if outcome is not None else "stream ended early"
        message = outcome.data.get("message", "") if outcome is not None else ""
        _fail(f"task {admitted.task_id} failed: {kind}: {message}", exitcodes.TESTS_FAILED)


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def req_id_problems(document: dict[str, Any], index: Index) -> list[str]:
    """Why the ``x-req-id`` lists of an OpenAPI document do not match the index.

    Every operation must cite, as ``x-req-id``, a non-empty sorted list of
    distinct, active requirement IDs: a typo, a retired (tombstoned) ID or a
    forgotten list would otherwise silently cut the link from the contract to
    the spec that reports and reviewers rely on. Empty when all is well.
    """
    from harness.trace.index import id_number, is_valid_id

    problems: list[str] = []
    for path, methods in sorted(document.get("paths", {}).items()):
        for method, operation in sorted(methods.items()):
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            where = f"{method.upper()} {path} ({operation.get('operationId', '?')})"
            ids = operation.get("x-req-id")
            if ids is None:
                problems.append(f"{where}: no x-req-id")
                continue
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                problems.append(f"{where}: x-req-id must be a non-empty list of ORCH IDs")
                continue
            for req_id in ids:
                if not is_valid_id(req_id):
                    problems.append(f"{where}: x-req-id has malformed ID {req_id!r}")
                elif index.is_tombstone(req_id):
                    problems.append(f"{where}: x-req-id cites deleted requirement {req_id}")
                elif req_id not in index:
                    problems.append(f"{where}: x-req-id cites unknown requirement {req_id}")
            if all(is_valid_id(i) for i in ids):
                numbers = [id_number(i) for i in ids]
                if numbers != sorted(set(numbers)):
                    problems.append(f"{where}: x-req-id must be sorted and without duplicates")
    return problems


def _check_req_ids(document: dict[str, Any], index_path: Path) -> None:
    """Exit with SPEC_ERROR and one line when the document's x-req-id lists are wrong."""
    from harness.trace.index import TraceFileError
    from harness.trace.index_file import load_index

    try:
        index = load_index(index_path)
    except TraceFileError as exc:
        _fail(str(exc), exitcodes.SPEC_ERROR)
    problems = req_id_problems(document, index)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        _fail(f"{problems[0]}{more}; index {index_path}", exitcodes.SPEC_ERROR)


@click.group("openapi")
def openapi_group() -> None:
    """The committed OpenAPI document (contracts/openapi/orchqueue.yaml)."""


@openapi_group.command("regen")
@click.option("--check", is_flag=True, help="Exit 1 if the committed document is stale.")
@click.option(
    "--output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where the document lives (default: contracts/openapi/orchqueue.yaml).",
)
@click.option(
    "--index",
    "index_path",
    default="requirements/index.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Requirements index that x-req-id IDs must exist in.",
)
def openapi_regen(check: bool, output: str | None, index_path: str) -> None:
    """Generate the OpenAPI document from the app (byte-stable).

    Every operation's ``x-req-id`` is validated against the requirements index
    first; an unknown, deleted or missing ID exits 7 and writes nothing.
    """
    from harness.trace.index_file import write_text_atomic
    from orchestrator.api.openapi import DEFAULT_PATH, openapi_document, render

    path = Path(output) if output else DEFAULT_PATH
    document = openapi_document()
    _check_req_ids(document, Path(index_path))
    text = render(document)
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror}", exitcodes.USAGE)
    if check:
        if current != text:
            state = "missing" if current is None else "stale"
            _fail(f"{path} is {state}: run `orchq openapi regen`", exitcodes.STALE)
        click.echo(f"orchq: {path} is up to date")
        return
    if current == text:
        click.echo(f"orchq: {path} unchanged")
        return
    write_text_atomic(path, text)
    click.echo(f"orchq: wrote {path}")
