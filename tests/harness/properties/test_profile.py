"""The suites' Hypothesis settings are the ``orchq`` profile, which the run's own
``--hypothesis-profile`` and ``--hypothesis-seed`` override."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

PROBE = textwrap.dedent(
    """
    from harness.conformance.test_properties import orch_queue_settings  # noqa: F401


    def test_probe(orch_queue_settings):
        s = orch_queue_settings
        print(f"PROBE max_examples={s.max_examples} derandomize={s.derandomize} "
              f"database={s.database}")
    """
)


def _probe(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        "from hypothesis import settings\n\n"
        "settings.register_profile('mine', max_examples=7, derandomize=False)\n"
    )
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    line = next(line for line in result.stdout.lines if "PROBE " in line)
    return line[line.index("PROBE ") :]


def test_the_orchq_profile_by_default(pytester: pytest.Pytester) -> None:
    assert _probe(pytester) == "PROBE max_examples=60 derandomize=True database=None"


def test_the_runs_profile_wins(pytester: pytest.Pytester) -> None:
    assert _probe(pytester, "--hypothesis-profile", "mine").startswith(
        "PROBE max_examples=7 derandomize=False"
    )


def test_a_seed_turns_derandomisation_off(pytester: pytest.Pytester) -> None:
    assert _probe(pytester, "--hypothesis-seed", "3") == (
        "PROBE max_examples=60 derandomize=False database=None"
    )
