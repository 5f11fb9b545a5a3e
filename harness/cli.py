"""The ``orchq`` command line: one click group that gathers every sub-command.

Each area owns its commands (``harness.orchestrator_cli`` for serving and OpenAPI,
``harness.trace.spec_cli`` for the spec and traceability); this module only names
them, so ``orchq --help`` lists everything in one place. A command's module is
imported when that command runs (click's lazily loaded sub-commands): ``orchq
serve``, which the harness starts once per configured target, does not pay for
pytest, Schemathesis or rich.
"""

from __future__ import annotations

import importlib

import click

from orchestrator import __version__

COMMANDS: dict[str, str] = {
    "serve": "harness.orchestrator_cli:serve_command",
    "run": "harness.orchestrator_cli:run_command",
    "runs": "harness.runs_cli:runs_group",
    "openapi": "harness.orchestrator_cli:openapi_group",
    "spec": "harness.trace.spec_cli:spec_group",
    "verify": "harness.verify.cli:verify_command",
    "trace": "harness.trace.trace_cli:trace_group",
    "engine": "harness.engine.cli:engine_group",
    "determinism": "harness.determinism.cli:determinism_group",
    "pact": "harness.pact.cli:pact_group",
}
"""Sub-command name -> ``module:attribute`` of its click command."""


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - COMMANDS is ours
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchq")
def main() -> None:
    """orchq: determinism and contract harness for LLM task orchestrators."""
