"""Helpers for the spec/index self-tests: a throw-away project in ``tmp_path``.

Specs are written line by line so every test can state the exact ``file:line``
it expects; the CLI is driven through click's ``CliRunner`` on the ``spec``
group itself, so these tests do not depend on the rest of ``orchq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from harness.trace.spec_cli import spec_group


def marker(number: int) -> str:
    """The canonical marker of requirement ``number``."""
    req_id = f"ORCH-{number:04d}"
    return f'<a id="{req_id}"></a>**{req_id}** — '


@dataclass
class Project:
    root: Path
    spec: Path
    index: Path

    def write_spec(self, *lines: str) -> Path:
        """Write the spec from lines (joined with ``\\n``, final newline added)."""
        self.spec.parent.mkdir(parents=True, exist_ok=True)
        self.spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.spec

    def write_index(self, text: str) -> Path:
        self.index.parent.mkdir(parents=True, exist_ok=True)
        self.index.write_text(text, encoding="utf-8")
        return self.index

    def spec_lines(self) -> list[str]:
        return self.spec.read_text(encoding="utf-8").split("\n")

    def run(self, command: str, *extra: str) -> Result:
        """``orchq spec <command> --spec ... --index ... <extra>``."""
        args = [command, "--spec", str(self.spec), "--index", str(self.index), *extra]
        result = CliRunner().invoke(spec_group, args, catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    def snapshot(self) -> dict[str, bytes | None]:
        """Bytes of the spec and the index (None if absent), to prove nothing was written."""
        return {str(p): p.read_bytes() if p.is_file() else None for p in (self.spec, self.index)}

    def stray_files(self) -> list[str]:
        """Temporary files left behind by an interrupted atomic write."""
        return sorted(
            p.name
            for d in (self.spec.parent, self.index.parent)
            if d.is_dir()
            for p in d.iterdir()
            if p.name.endswith(".tmp")
        )
