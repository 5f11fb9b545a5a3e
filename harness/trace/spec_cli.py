"""``orchq spec``: keep a project's normative spec and its requirements index in step.

``orchq spec ids`` numbers new normative sentences in the spec; ``orchq spec
extract`` regenerates the index from it (``--check`` for CI). The ID prefix and
the default paths are the project's (:mod:`harness.project`: ``[tool.orchq]``
or the ``orchq_*`` pytest ini options in the nearest ``pyproject.toml``;
OrchQueue's otherwise). Given only ``--index``, the spec is the one that index
records. Problems with the inputs are printed one per line on stderr as
``file:line: message`` and end the command with
:data:`harness.exitcodes.SPEC_ERROR`; a stale index under ``--check`` exits
with :data:`harness.exitcodes.STALE`. Nothing is ever written half-way:
outputs are replaced atomically, and only after every check passed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from harness import exitcodes
from harness.project import DEFAULTS, Project, ProjectError, find_project
from harness.trace.index import IdScheme, Requirement, TraceFileError
from harness.trace.index_file import load_index_if_exists, write_text_atomic
from harness.trace.spec import SpecLintError
from harness.trace.spec_extract import count_levels, extract, recorded_spec
from harness.trace.spec_ids import IdAssignment, run_ids

_MAX_ROWS = 20
"""Longest table of assigned IDs printed in full; the rest is summarised."""


def _fail(lines: Iterable[str], code: int = exitcodes.SPEC_ERROR) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    raise click.exceptions.Exit(code)


def _display(path: Path) -> str:
    """How a default path is shown: relative to the working directory when possible."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
    return rel if not rel.startswith(".." + os.sep + "..") else str(path)


def _project() -> Project:
    try:
        return find_project(Path.cwd())
    except ProjectError as exc:
        _fail([str(exc)])


def _paths(spec: Path | None, index: Path | None) -> tuple[Path, str, Path, str, IdScheme]:
    """Spec and index (given, else the project's; the spec an explicit index records),
    how to show them, and the project's ID scheme."""
    project = _project()
    index_path, index_shown = (index, str(index)) if index is not None else (None, "")
    if index_path is None:
        index_path = project.path("index")
        index_shown = _display(index_path)
    if spec is not None:
        return spec, str(spec), index_path, index_shown, project.scheme
    if index is not None:
        try:
            recorded = load_index_if_exists(index, index_shown, project.scheme)
        except TraceFileError as exc:
            _fail([str(exc)])
        if recorded is not None:
            spec_path = recorded_spec(index, recorded)
            return spec_path, _display(spec_path), index_path, index_shown, project.scheme
    spec_path = project.path("spec")
    return spec_path, _display(spec_path), index_path, index_shown, project.scheme


_SPEC_OPTION = click.option(
    "--spec",
    "spec",
    type=click.Path(path_type=Path, dir_okay=True, file_okay=True),
    default=None,
    help="The normative Markdown spec. [default: the project's spec, "
    f"{DEFAULTS['spec']} unless [tool.orchq] says otherwise; with --index, the spec it records]",
)
_INDEX_OPTION = click.option(
    "--index",
    "index",
    type=click.Path(path_type=Path, dir_okay=True, file_okay=True),
    default=None,
    help="The requirements index. [default: the project's index, "
    f"{DEFAULTS['index']} unless [tool.orchq] says otherwise]",
)


@click.group("spec", context_settings={"help_option_names": ["-h", "--help"]})
def spec_group() -> None:
    """Requirement IDs in the spec, and the requirements index.

    Every normative sentence of the spec (one with MUST, MUST NOT, SHOULD,
    SHOULD NOT or MAY) carries one ID, e.g. ORCH-0012 (the prefix is the project's:
    prefix in [tool.orchq] of pyproject.toml). Exit codes: 0 success, 1 (extract
    --check) the index is stale, 7 the spec, the index or the configuration is broken.
    """


@spec_group.command("ids")
@_SPEC_OPTION
@_INDEX_OPTION
def ids_command(spec: Path | None, index: Path | None) -> None:
    """Give un-numbered normative sentences the next free IDs, in place.

    IDs continue after the highest ID ever used, counting deleted requirements
    kept as tombstones in the index, so an ID is never reused. Running it twice
    changes nothing the second time.
    """
    spec_path, spec_shown, index_path, index_shown, scheme = _paths(spec, index)
    try:
        result = run_ids(
            spec_path, index_path, spec_display=spec_shown, index_display=index_shown, scheme=scheme
        )
    except TraceFileError as exc:
        _fail([str(exc)])
    except SpecLintError as exc:
        _fail(str(e) for e in exc.errors)
    if not result.changed:
        click.echo(f"{spec_shown}: every normative sentence has an ID; nothing to do")
        return
    if result.assigned:
        click.echo(
            f"{spec_shown}: assigned {len(result.assigned)} new ID(s): "
            f"{result.assigned[0]} .. {result.assigned[-1]}"
        )
        _print_assigned(result)
    if result.completed:
        click.echo(
            f"{spec_shown}: completed the marker of {len(result.completed)} ID(s): "
            + ", ".join(result.completed)
        )
    click.echo(f"next: run `orchq spec extract` to update {index_shown}")


def _print_assigned(result: IdAssignment) -> None:
    """A table of the newly numbered sentences, so the author sees what got which ID."""
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("sentence", no_wrap=True)
    for req_id, where in list(zip(result.assigned, result.sentences, strict=True))[:_MAX_ROWS]:
        text = where.text if len(where.text) <= 48 else where.text[:47] + "…"
        table.add_row(req_id, str(where.line), where.level, text)
    _console().print(table)
    if len(result.assigned) > _MAX_ROWS:
        click.echo(f"  ... and {len(result.assigned) - _MAX_ROWS} more")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, markup=False)


@spec_group.command("extract")
@_SPEC_OPTION
@_INDEX_OPTION
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if the index is not what extract would write.",
)
def extract_command(spec: Path | None, index: Path | None, check: bool) -> None:
    """Lint the spec and write the requirements index (id, level, section, text, sha256, line).

    Requirements deleted from the spec stay in the index as tombstones
    (status: deleted). The output is deterministic: a second run is byte-identical.
    """
    spec_path, spec_shown, index_path, index_shown, scheme = _paths(spec, index)
    try:
        result = extract(
            spec_path, index_path, spec_display=spec_shown, index_display=index_shown, scheme=scheme
        )
    except TraceFileError as exc:
        _fail([str(exc)])
    except SpecLintError as exc:
        _fail(str(e) for e in exc.errors)

    if check:
        if not result.stale:
            click.echo(f"{index_shown}: up to date ({len(result.index.active())} requirements)")
            return
        if result.previous_text is None:
            _fail([f"{index_shown}: missing; run `orchq spec extract`"], exitcodes.STALE)
        _fail(
            [
                f"{index_shown}: stale; run `orchq spec extract` "
                f"({len(result.differences)} difference(s)):",
                *(f"  {line}" for line in result.differences),
            ],
            exitcodes.STALE,
        )

    if result.stale:
        try:
            write_text_atomic(index_path, result.text, index_shown)
        except TraceFileError as exc:
            _fail([str(exc)])
        verb = "wrote"
    else:
        verb = "unchanged"
    active = result.index.active()
    tombstones = len(result.index.tombstones())
    click.echo(f"{index_shown}: {verb}, {len(active)} requirements, {tombstones} tombstone(s)")
    _print_levels(active)


def _print_levels(active: list[Requirement]) -> None:
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("level")
    table.add_column("requirements", justify="right")
    for level, count in count_levels(active).items():
        table.add_row(level, str(count))
    _console().print(table)
