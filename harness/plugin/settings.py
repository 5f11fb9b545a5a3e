"""orchq's pytest settings: each a command-line option with an ini twin, read through one helper.

Every setting is declared once as a :class:`Setting` and registered with
:func:`add`: ``--orch-index`` on the command line, ``orchq_index`` in the
project's pytest configuration (``[tool.pytest.ini_options]``, ``pytest.ini``,
...), and for a few an environment variable. :meth:`OrchqSession.value` reads
them in that order: the command line wins, then the ini file, then the
environment. An environment variable only ever supplies a value: it never
switches a plugin on, deletes a file or fails a run that does not use orchq.

The per-run state of the plugin is one :class:`OrchqSession` in
``config.stash`` (:func:`orchq_session`): the settings, the project's
traceability configuration, and what the plugins load lazily (the index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.project import Project

__all__ = ["OrchqSession", "Setting", "add", "orchq_session"]


@dataclass(frozen=True)
class Setting:
    """One setting: ``--orch-<name>`` (unless ``cli`` is false), ini ``orchq_<name>``, env."""

    name: str
    """``index`` -> option dest ``orch_index``, flag ``--orch-index``, ini ``orchq_index``."""
    help: str
    env: str | None = None
    cli: bool = True

    @property
    def dest(self) -> str:
        return "orch_" + self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return "--orch-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "orchq_" + self.name.replace("-", "_")


def add(parser: pytest.Parser, group: str, setting: Setting, **option: Any) -> None:
    """Register ``setting``'s command-line option (in ``group``) and its ini twin.

    ``option`` goes to ``addoption`` (``choices``, ``type``, ``metavar``, ``action``);
    the option's default is always ``None``, so "not given" is visible.
    """
    where = f" (ini {setting.ini}" + (f", env {setting.env}" if setting.env else "") + ")"
    if setting.cli:
        parser.getgroup(group).addoption(
            setting.flag, dest=setting.dest, default=None, help=setting.help + where, **option
        )
    parser.addini(setting.ini, setting.help + f" (command line: {setting.flag})", default=None)


@dataclass(eq=False)
class OrchqSession:
    """What the orchq plugins know about this pytest run (one per config, in its stash)."""

    config: pytest.Config
    cache: dict[str, Any] = field(default_factory=dict)
    """Things loaded once per process (the requirements index, the project)."""

    def _given(self, setting: Setting) -> tuple[str, Path] | None:
        """The value and the directory a relative path in it is relative to."""
        config = self.config
        if setting.cli:
            cli = config.getoption(setting.dest, None)
            if cli is not None:
                return str(cli), Path(config.invocation_params.dir)
        ini = config.getini(setting.ini)
        if isinstance(ini, str) and ini.strip():
            base = config.inipath.parent if config.inipath else config.rootpath
            return ini.strip(), Path(base)
        if setting.env:
            env = os.environ.get(setting.env, "").strip()
            if env:
                return env, Path(config.invocation_params.dir)
        return None

    def value(self, setting: Setting) -> str | None:
        """The setting's value (command line, else ini, else environment), or ``None``."""
        given = self._given(setting)
        return given[0] if given is not None else None

    def path(self, setting: Setting) -> Path | None:
        """A path setting, absolute: command-line and environment values are relative to
        the directory pytest started in, ini values to the ini file's directory."""
        given = self._given(setting)
        if given is None:
            return None
        path = Path(given[0]).expanduser()
        return path if path.is_absolute() else given[1] / path

    def project(self) -> Project:
        """The project's traceability configuration (see :mod:`harness.project`).

        The pytest ini twins (``orchq_prefix``, ``orchq_spec``, ...) win over
        ``[tool.orchq]`` of the rootdir's ``pyproject.toml``; raises
        :class:`~harness.project.ProjectError` for a broken configuration.
        """
        cached: Project | None = self.cache.get("project")
        if cached is None:
            from harness.project import KEYS, Project, ProjectError, project_from, read_pyproject

            config = self.config
            pyproject = Path(config.rootpath) / "pyproject.toml"
            if config.inipath is not None and config.inipath.name == "pyproject.toml":
                pyproject = Path(config.inipath)
            values: dict[str, object] = {}
            if pyproject.is_file():
                try:
                    values.update(read_pyproject(pyproject) or {})
                except ProjectError as exc:
                    if not exc.unreadable:
                        raise
                    # Not valid TOML and not pytest's ini file: not ours to judge.
            base = Path(config.inipath.parent if config.inipath else config.rootpath)
            for key in KEYS:
                ini = config.getini(f"orchq_{key}")
                if isinstance(ini, str) and ini.strip():
                    values[key] = ini.strip()
            cached = project_from(base, values, str(config.inipath or pyproject))
            if not isinstance(cached, Project):  # pragma: no cover - project_from's contract
                raise TypeError(cached)
            self.cache["project"] = cached
        return cached


_SESSION = pytest.StashKey[OrchqSession]()


def orchq_session(config: pytest.Config) -> OrchqSession:
    """The run's :class:`OrchqSession` (created on first use)."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        session = OrchqSession(config)
        config.stash[_SESSION] = session
    return session
