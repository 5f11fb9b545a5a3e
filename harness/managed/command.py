"""The serve command of a harness-managed target: ``{port}``, ``{config}``, ``{state_dir}``.

``--orch-serve-cmd "CMD"`` (``orchq verify --serve-cmd``) names how to start the
implementation under test. The harness fills in the three placeholders for
each start, each value shell-quoted, and runs the result with ``/bin/sh -c`` in
the folder the run was started in, so a wrapper script (``./serve.sh {config}``)
or a pipeline works as typed. Only these exact placeholders are replaced:
any other brace (``awk '{print}'``) is left as it is.

``{port}`` and ``{config}`` are required: the harness picks the port and writes
the configuration, so a command that ignores either cannot be certified.
``{state_dir}`` is a folder that outlives restarts of one target (its database
belongs there); the configuration's ``database`` key points into it too.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMBEDDED_SERVE_CMD",
    "PLACEHOLDERS",
    "CommandError",
    "ServeCommand",
    "embedded_command",
]

PLACEHOLDERS = ("port", "config", "state_dir")
REQUIRED = ("port", "config")
_PLACEHOLDER = re.compile(r"\{(port|config|state_dir)\}")

EMBEDDED_SERVE_CMD = "orchq serve --port {port} --config {config} --db {state_dir}/orchq.db"
"""The command the embedded default stands for (with this interpreter's ``orchq``)."""


class CommandError(ValueError):
    """A serve command the harness cannot use; the message is one line naming the problem."""


@dataclass(frozen=True)
class ServeCommand:
    """A validated serve command template."""

    template: str

    @classmethod
    def parse(cls, template: str, *, option: str = "--orch-serve-cmd") -> ServeCommand:
        """Check the template: not empty, with ``{port}`` and ``{config}``, balanced quotes."""
        text = template.strip()
        if not text:
            raise CommandError(f"{option}: the command is empty")
        missing = [name for name in REQUIRED if "{" + name + "}" not in text]
        if missing:
            names = " and ".join("{" + name + "}" for name in missing)
            raise CommandError(
                f"{option}: the command must contain {names} (the harness picks the port and "
                f"writes the configuration file); got {text!r}"
            )
        try:
            shlex.split(_PLACEHOLDER.sub("x", text))
        except ValueError as exc:
            raise CommandError(f"{option}: cannot read the command {text!r}: {exc}") from None
        return cls(text)

    def render(self, *, port: int, config: Path, state_dir: Path) -> str:
        """The shell command of one start, every value quoted for ``/bin/sh``."""
        values = {"port": str(port), "config": str(config), "state_dir": str(state_dir)}
        return _PLACEHOLDER.sub(lambda match: shlex.quote(values[match.group(1)]), self.template)


def embedded_command() -> ServeCommand:
    """``orchq serve`` of this installation, run by this interpreter (no PATH lookup)."""
    python = shlex.quote(sys.executable)
    return ServeCommand(EMBEDDED_SERVE_CMD.replace("orchq ", f"{python} -m harness ", 1))
