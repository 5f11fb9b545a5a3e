"""Build hook: the wheel carries the repository's top-level data as ``harness/_bundled/``.

Everything else is configured in ``pyproject.toml``. The folders and files named
in :data:`BUNDLED` keep their one committed copy at the top of the repository;
building a wheel copies them into the package, where :mod:`harness.resources`
reads them. An editable install copies nothing: it reads the checkout itself.
``MANIFEST.in`` puts the same items into the sdist, so a wheel built from it
(``python -m build``) carries them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED: tuple[str, ...] = ("specs", "requirements", "contracts", "snapshots", "schemathesis.toml")
"""Top-level folders (or files) of the repository shipped inside the wheel."""
BUNDLE = Path("harness", "_bundled")


class BuildWithBundle(build_py):
    """``build_py`` plus a fresh copy of :data:`BUNDLED` under ``harness/_bundled``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / BUNDLE
        shutil.rmtree(target, ignore_errors=True)  # no file survives its removal upstream
        for name in BUNDLED:
            if Path(name).is_dir():
                self.copy_tree(name, str(target / name))
            else:
                self.mkpath(str(target))
                self.copy_file(name, str(target / name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if self.editable_mode:
            return outputs
        for name in BUNDLED:
            source = Path(name)
            found = sorted(source.rglob("*")) if source.is_dir() else [source]
            outputs.extend(
                str(Path(self.build_lib) / BUNDLE / item) for item in found if item.is_file()
            )
        return outputs


setup(cmdclass={"build_py": BuildWithBundle})
