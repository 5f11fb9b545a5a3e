"""The files orchq reads at run time, found the same way wherever orchq is installed.

The spec, the requirements index and its acceptance lock, the OpenAPI
document, the pacts, the metrics contract, the determinism snapshots and the
Schemathesis configuration have one committed copy each, in the repository's
top-level folders (``specs/``, ``requirements/``, ``contracts/``,
``snapshots/``) and ``schemathesis.toml``, where spec authors and the
``--check`` commands keep them. A built wheel carries a copy of those folders
as package data under ``harness/_bundled/`` (``setup.py`` copies them at build
time); an editable install has no such copy and reads the checkout's folders.

Every reader goes through :func:`path`, so nothing else knows where these
files live. Commands that *write* them (``orchq pact regen``, snapshot
updates) work on :func:`checkout`, which a wheel does not have.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = [
    "BUNDLE",
    "INDEX",
    "LOCK",
    "METRICS_LINT",
    "OPENAPI",
    "PACTS",
    "SCHEMATHESIS_CONFIG",
    "SNAPSHOTS",
    "SPEC",
    "MissingResource",
    "checkout",
    "conformance_ini",
    "path",
]

BUNDLE = "_bundled"
"""Folder of the ``harness`` package that holds the shipped files in a wheel."""

SPEC = "specs/orchestrator-spec.md"
INDEX = "requirements/index.yaml"
LOCK = "requirements/accepted.lock.yaml"
OPENAPI = "contracts/openapi/orchqueue.yaml"
PACTS = "contracts/pacts"
METRICS_LINT = "contracts/metrics.lint.json"
SNAPSHOTS = "snapshots"
SCHEMATHESIS_CONFIG = "schemathesis.toml"


class MissingResource(FileNotFoundError):
    """A shipped file is absent: a broken installation, said in one line."""


def _package_dir() -> Path:
    location = files("harness")
    if not isinstance(location, Path):  # a zip import: package data is not on disk
        raise MissingResource(
            f"orchq is installed as {location}, not as files on disk; install the wheel with pip"
        )
    return location


def checkout() -> Path | None:
    """The orchq repository this package runs from (an editable install), or ``None``."""
    package = _package_dir()
    if (package / BUNDLE).is_dir():
        return None
    root = package.parent
    if (root / "pyproject.toml").is_file() and (root / SPEC).is_file():
        return root
    return None


def conformance_ini() -> Path:
    """The settings the packaged conformance suite runs with (``harness/conformance``)."""
    found = files("harness.conformance") / "conformance.ini"
    if not isinstance(found, Path) or not found.is_file():
        raise MissingResource(f"{found}: not shipped with orchq; reinstall orchq")
    return found


def path(relative: str) -> Path:
    """A shipped file or folder by its repository path, e.g. ``path(INDEX)``.

    Raises :class:`MissingResource` when it is not there.
    """
    bundle = _package_dir() / BUNDLE
    base = bundle if bundle.is_dir() else checkout()
    if base is None:
        raise MissingResource(
            f"orchq's packaged files are missing ({bundle} does not exist); reinstall orchq"
        )
    found = base / relative
    if not found.exists():
        raise MissingResource(f"{relative}: not shipped with orchq (looked in {base})")
    return found
