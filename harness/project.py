"""A project's orchq configuration: ID prefix, spec, index, lock, OpenAPI document, title.

Traceability belongs to the project whose spec it is. A project says how its
requirement IDs are spelled and where its files are in ``pyproject.toml``::

    [tool.orchq]
    prefix = "LEDGER"                       # IDs are LEDGER-0001, ...
    spec = "docs/ledger-spec.md"
    index = "requirements/ledger.yaml"
    lock = "requirements/ledger.lock.yaml"  # `orchq trace accept` writes it
    openapi = "api/ledger.yaml"             # optional: x-req-id of its operations
    title = "Ledger service v2"             # heads COMPLIANCE.md and report.html

or with the same keys as pytest ini options (``orchq_prefix``, ``orchq_spec``,
``orchq_index``, ``orchq_lock``, ``orchq_openapi``, ``orchq_title`` in
``[tool.pytest.ini_options]``), which win over ``[tool.orchq]`` when both are
given. The ``orchq spec``/``orchq trace`` commands and the pytest plugin read
the same values; paths are relative to the directory of ``pyproject.toml``.
Unset keys keep OrchQueue's defaults (:data:`DEFAULTS`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.trace.index import IdScheme

__all__ = [
    "DEFAULTS",
    "INI_PREFIX",
    "KEYS",
    "Project",
    "ProjectError",
    "find_project",
    "project_from",
    "read_pyproject",
]

KEYS: tuple[str, ...] = ("prefix", "spec", "index", "lock", "openapi", "title")
DEFAULTS: dict[str, str] = {
    "prefix": "ORCH",
    "spec": "specs/orchestrator-spec.md",
    "index": "requirements/index.yaml",
    "lock": "requirements/accepted.lock.yaml",
    "openapi": "contracts/openapi/orchqueue.yaml",
    "title": "OrchQueue v1",
}
INI_PREFIX = "orchq_"
"""pytest ini twins are ``orchq_<key>``."""


class ProjectError(Exception):
    """A broken orchq configuration, phrased as one line naming the file and key.

    ``unreadable`` is true when the file itself could not be read as TOML: the
    pytest plugin then leaves an unrelated project's run alone.
    """

    def __init__(self, message: str, *, unreadable: bool = False) -> None:
        super().__init__(message)
        self.unreadable = unreadable


@dataclass(frozen=True)
class Project:
    """The configuration of one project, defaults filled in."""

    root: Path
    """Directory the paths are relative to (that of ``pyproject.toml``)."""
    values: Mapping[str, str] = field(default_factory=dict)
    """Explicitly configured keys only."""
    source: Path | None = None
    """The ``pyproject.toml`` the values came from, if any."""

    def get(self, key: str) -> str:
        return self.values.get(key, DEFAULTS[key])

    def given(self, key: str) -> bool:
        return key in self.values

    def path(self, key: str) -> Path:
        return self.root / self.get(key)

    @property
    def scheme(self) -> IdScheme:
        return IdScheme(self.get("prefix"))

    @property
    def title(self) -> str:
        return self.get("title")


def _check(values: Mapping[str, object], where: str) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in values.items():
        if key not in KEYS:
            raise ProjectError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise ProjectError(f"{where}: {key} must be a non-empty string")
        checked[key] = value.strip()
    if "prefix" in checked:
        try:
            IdScheme(checked["prefix"])
        except ValueError as exc:
            raise ProjectError(f"{where}: {exc}") from None
    return checked


def read_pyproject(path: Path) -> dict[str, str] | None:
    """The orchq keys of one ``pyproject.toml`` (``None``: it configures no orchq key).

    Raises :class:`ProjectError` for a file that is not valid TOML or a bad key.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read: {exc}", unreadable=True) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path}: not valid TOML: {exc}", unreadable=True) from None
    tool = data.get("tool", {})
    table = tool.get("orchq") if isinstance(tool, dict) else None
    pytest_table = tool.get("pytest", {}) if isinstance(tool, dict) else {}
    ini = pytest_table.get("ini_options", {}) if isinstance(pytest_table, dict) else {}
    twins = {
        name[len(INI_PREFIX) :]: value
        for name, value in (ini.items() if isinstance(ini, dict) else ())
        if name.startswith(INI_PREFIX) and name[len(INI_PREFIX) :] in KEYS
    }
    if table is None and not twins:
        return None
    if table is not None and not isinstance(table, dict):
        raise ProjectError(f"{path}: [tool.orchq] must be a table")
    values = _check(table or {}, f"{path}: [tool.orchq]")
    values.update(_check(twins, f"{path}: [tool.pytest.ini_options] orchq_*"))
    return values


def project_from(root: Path, values: Mapping[str, object], where: str) -> Project:
    """A project rooted at ``root`` from already-read values (the pytest plugin's ini)."""
    return Project(root, _check(values, where))


def find_project(start: Path) -> Project:
    """The project of the nearest ``pyproject.toml`` at or above ``start`` that configures
    orchq; else the nearest directory holding OrchQueue's spec (a checkout of orchq); else
    ``start`` with the defaults. Like ``git``, this works from any sub-directory."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            values = read_pyproject(pyproject)
            if values is not None:
                return Project(candidate, values, pyproject)
        if (candidate / DEFAULTS["spec"]).is_file():
            return Project(candidate)
    return Project(start)
