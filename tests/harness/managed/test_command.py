"""The serve command template: what it must contain, and how a start fills it in."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from harness.managed.command import EMBEDDED_SERVE_CMD, CommandError, ServeCommand, embedded_command


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "the command is empty"),
        ("   ", "the command is empty"),
        ("my-server --config {config}", "must contain {port} "),
        ("my-server --port {port}", "must contain {config} "),
        ("my-server", "must contain {port} and {config}"),
        ("my-server --port {port} --config {config} 'unclosed", "cannot read the command"),
    ],
)
def test_a_command_the_harness_cannot_use_is_refused_in_one_line(
    template: str, problem: str
) -> None:
    with pytest.raises(CommandError) as caught:
        ServeCommand.parse(template)
    message = str(caught.value)
    assert message.startswith("--orch-serve-cmd: ") and problem in message
    assert "\n" not in message


def test_placeholders_are_filled_quoted_and_other_braces_kept() -> None:
    command = ServeCommand.parse(
        "run --port {port} --config {config} --db {state_dir}/x.db | awk '{print}'"
    )
    rendered = command.render(
        port=4711, config=Path("/tmp/a b/c.yaml"), state_dir=Path("/tmp/it's")
    )
    words = shlex.split(rendered)
    assert words[:7] == [
        "run",
        "--port",
        "4711",
        "--config",
        "/tmp/a b/c.yaml",
        "--db",
        "/tmp/it's/x.db",
    ]
    assert rendered.endswith("| awk '{print}'")


def test_the_embedded_command_is_orchq_serve_of_this_interpreter() -> None:
    command = embedded_command()
    assert command.template.startswith(shlex.quote(sys.executable) + " -m harness serve ")
    assert command.template.endswith(EMBEDDED_SERVE_CMD.removeprefix("orchq serve "))
