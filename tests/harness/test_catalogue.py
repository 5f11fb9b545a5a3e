"""The mutant catalogue lists every mutant self-test, and makes a whole run the mutant.

``bench/mutant_catalogue.py`` runs the conformance suite against each entry; these
tests keep the catalogue complete (a new mutant dictionary cannot be forgotten) and
show its plugin turning a run into the mutant, so the bench measures what it says.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from harness.trace.index_file import load_index
from tests.harness.catalogue import CATALOGUE, ENV, by_name
from tests.harness.mutantkit import INDEX, assert_caught, run_conformance

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent


def _mutant_dictionaries() -> dict[str, set[str]]:
    """Every module-level ``*MUTANTS`` dictionary of the mutant modules, by module."""
    found: dict[str, set[str]] = {}
    for path in sorted(HERE.rglob("*mutants.py")):
        if path.name.startswith("test_"):
            continue
        module = importlib.import_module(
            ".".join(path.relative_to(HERE.parents[1]).with_suffix("").parts)
        )
        names: set[str] = set()
        for attribute, value in vars(module).items():
            if attribute.endswith("MUTANTS") and isinstance(value, dict):
                names.update(value)
        found[module.__name__] = names
    return found


def test_every_mutant_of_every_mutant_module_is_in_the_catalogue() -> None:
    listed = {mutant.name for mutant in CATALOGUE}
    dictionaries = _mutant_dictionaries()
    assert len(dictionaries) >= 9, sorted(dictionaries)
    missing = {
        module: sorted(names - listed) for module, names in dictionaries.items() if names - listed
    }
    assert not missing, f"mutants missing from tests/harness/catalogue.py: {missing}"
    assert len(listed) == len(CATALOGUE) == sum(len(n) for n in dictionaries.values())


def test_every_mutant_breaks_an_active_requirement() -> None:
    index = load_index(INDEX, "requirements/index.yaml")
    for mutant in CATALOGUE:
        requirement = index.get(mutant.breaks)
        assert requirement is not None and not index.is_tombstone(mutant.breaks), mutant


def test_the_catalogue_plugin_makes_a_run_the_mutant(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    mutant = by_name("X-Request-Id not echoed")
    selection = ("-k", str(mutant.selection), "-p", "tests.harness.catalogue")
    run_conformance(pytester, mutant.module, *selection).assert_outcomes(passed=1)
    monkeypatch.setenv(ENV, mutant.name)
    result = run_conformance(pytester, mutant.module, *selection)
    assert_caught(result, mutant.breaks, mutant.name, failed=1)


@pytest.mark.slow
def test_a_broken_queue_is_caught_over_the_wire_too(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue mutants of the properties suite, in a server: the HTTP check of lane order
    and the batch share catches them without reaching into the queue."""
    monkeypatch.setenv(ENV, "lifo")
    selection = ("-k", "test_lanes_dispatch", "-p", "tests.harness.catalogue")
    result = run_conformance(pytester, "test_contract_queue", *selection)
    assert_caught(result, "ORCH-0088", "lifo", failed=1)
