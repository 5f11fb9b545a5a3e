"""Fresh virtualenvs outside the checkout, a wheel built from it, and commands run in them.

Shared by the packaging tests: they install orchq the way a user does (a wheel from
``pip wheel``, dependencies from the package index) into a venv under ``tmp_path``,
never touching the checkout or the environment running the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "build_wheel", "clean_env", "copy_checkout", "make_venv", "run"]

ROOT = Path(__file__).resolve().parents[2]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".hypothesis", "orchq-report", "*.db", "*.db-wal", "*.db-shm",
)  # fmt: skip
PIP_TIMEOUT_S = 900.0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the outer run's pytest, xdist or orchq
    variables, no PYTHONPATH into the checkout."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "ORCHQ_", "COV_"))
        and name not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env.update(PACT_DO_NOT_TRACK="true", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = PIP_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd``; stdout and stderr are kept apart."""
    return subprocess.run(
        args,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def copy_checkout(destination: Path) -> Path:
    """The repository's working tree (uncommitted changes included), without caches."""
    shutil.copytree(ROOT, destination, ignore=IGNORED)
    return destination


def build_wheel(source: Path, dist: Path, python: str = sys.executable) -> Path:
    """``pip wheel --no-deps`` of ``source`` into ``dist``; the one wheel it made."""
    done = run(
        [python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], dist.parent
    )
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    wheels = sorted(dist.glob("orchq-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(path: Path, *requirements: str, python: str = sys.executable) -> Path:
    """A new venv at ``path`` with ``requirements`` installed from the index; its ``bin``."""
    done = run([python, "-m", "venv", str(path)], path.parent)
    assert done.returncode == 0, done.stderr
    bindir = path / "bin"
    if requirements:
        done = run([str(bindir / "python"), "-m", "pip", "install", "-q", *requirements], path)
        assert done.returncode == 0, (
            f"pip install {' '.join(requirements)} failed:\n{done.stdout[-3000:]}"
            f"{done.stderr[-3000:]}"
        )
    return bindir
