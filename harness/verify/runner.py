"""Build and run the pytest invocation behind ``orchq verify``.

The conformance suite runs in this process through ``pytest.main`` (xdist
workers with ``-n``), with pytest's own terminal output diverted to
``pytest.log`` in the report directory: the user sees the live display and the
summary tables, and the full log is one file away.

Everything the run reads is shipped with orchq (:mod:`harness.resources`):
the suite's own settings (``-c conformance.ini``, so the folder it runs in and
any pytest configuration there change nothing), the requirements index, the
acceptance lock and the OpenAPI document. The root directory is the one that
holds the ``harness`` package, so test ids read ``harness/conformance/...``
from a checkout and from a wheel alike.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import resources
from harness.conformance import DEFAULT_SUITES, SUITE_MARKERS

__all__ = ["ALL_SUITES", "DEFAULT_SUITES", "RunPlan", "pytest_args", "run_pytest"]

ALL_SUITES: tuple[str, ...] = tuple(SUITE_MARKERS)


@dataclass(frozen=True)
class RunPlan:
    suites: tuple[str, ...]
    report_dir: Path
    gate: str
    workers: int
    target: str | None = None
    token: str | None = None
    serve_cmd: str | None = None
    """The serve command of a harness-managed target (``--orch-serve-cmd``)."""
    profile: str = "all"
    """The profiles the target claims (``--orch-profile``): ``all`` or ``core``."""

    @property
    def trace_json(self) -> Path:
        return self.report_dir / "trace.json"

    @property
    def compliance_md(self) -> Path:
        return self.report_dir / "COMPLIANCE.md"

    @property
    def html(self) -> Path:
        return self.report_dir / "report.html"

    @property
    def junit_xml(self) -> Path:
        return self.report_dir / "junit.xml"

    @property
    def log(self) -> Path:
        return self.report_dir / "pytest.log"


def pytest_args(plan: RunPlan) -> list[str]:
    """The pytest command line of ``plan``; raises :class:`~harness.resources.MissingResource`."""
    ini = resources.conformance_ini()
    args = [
        "--pyargs",
        "harness.conformance",
        "--rootdir",
        str(ini.parents[2]),  # the directory holding the harness package
        "-c",
        str(ini),
        "-p",
        "no:cacheprovider",
        "--orch-index",
        str(resources.path(resources.INDEX)),
        "--orch-lock",
        str(resources.path(resources.LOCK)),
        "--orch-openapi",
        str(resources.path(resources.OPENAPI)),
        "--orch-report-dir",
        str(plan.report_dir),
        "--orch-gate",
        "none",  # judged by harness.verify.gate over the suite's scope
        "--junitxml",
        str(plan.junit_xml),
        "-m",
        " or ".join(plan.suites),
        "-n",
        str(plan.workers),
    ]
    if plan.target is not None:
        args += ["--orch-url", plan.target]
        if plan.token is not None:
            args += ["--orch-token", plan.token]
    if plan.serve_cmd is not None:
        args += ["--orch-serve-cmd", plan.serve_cmd]
    if plan.profile != "all":
        args += ["--orch-profile", plan.profile]
    return args


HYPOTHESIS_STORAGE = "HYPOTHESIS_STORAGE_DIRECTORY"
"""Where Hypothesis keeps its caches (``./.hypothesis`` by default): a temporary folder for
the run, so ``orchq verify`` writes nothing outside its report folder."""


def run_pytest(args: Sequence[str], plugins: Sequence[object], log: Path) -> int:
    """``pytest.main`` with stdout/stderr written to ``log``; returns pytest's exit code."""
    import pytest

    log.parent.mkdir(parents=True, exist_ok=True)
    # The suite is judged by the gate and the reports; a user's PYTEST_ADDOPTS
    # must not silently deselect or rerun conformance tests.
    saved = os.environ.pop("PYTEST_ADDOPTS", None)
    with contextlib.ExitStack() as stack:
        if HYPOTHESIS_STORAGE not in os.environ:  # xdist workers inherit it
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="orchq-hypothesis-"))
            os.environ[HYPOTHESIS_STORAGE] = scratch
            stack.callback(os.environ.pop, HYPOTHESIS_STORAGE, None)
        try:
            with (
                log.open("w", encoding="utf-8") as out,
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(out),
            ):
                return int(pytest.main(list(args), plugins=list(plugins)))
        finally:
            if saved is not None:
                os.environ["PYTEST_ADDOPTS"] = saved
