"""The ``orchq`` command line: one click group that gathers every sub-command.

Each area owns its commands (``harness.orchestrator_cli`` for serving and OpenAPI,
``harness.trace.cli`` for the spec and traceability); this module only mounts
them, so ``orchq --help`` lists everything in one place.
"""

from __future__ import annotations

import click

from harness.contract.cli import pact_group
from harness.determinism.cli import determinism_group
from harness.engine.cli import engine_group
from harness.orchestrator_cli import openapi_group, run_command, serve_command
from harness.trace.cli import spec_group
from harness.trace.trace_cli import trace_group
from harness.verify.cli import verify_command
from orchestrator import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchq")
def main() -> None:
    """orchq: determinism and contract harness for LLM task orchestrators."""


main.add_command(serve_command)
main.add_command(run_command)
main.add_command(openapi_group)
main.add_command(spec_group)
main.add_command(verify_command)
main.add_command(trace_group)
main.add_command(engine_group)
main.add_command(determinism_group)
main.add_command(pact_group)
