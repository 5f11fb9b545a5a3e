"""The catalogue of every mutant self-test: what each breaks, and how to run a suite against it.

Each area's mutant module (``tests/harness/<area>/*mutants.py``) describes its
deliberately broken orchestrators in its own shape; :data:`CATALOGUE` lists
them all as :class:`Mutant` records: the requirement each breaks (and so its
spec section), the mutation, and the conformance module and ``-k`` selection its
own self-test runs. ``bench/mutant_catalogue.py`` runs the conformance suite
against each and reports the kill rate per spec section and how often the
failure names the right requirement.

A mutation is applied to a whole pytest run by this module as a plugin
(``-p tests.harness.catalogue`` with ``ORCHQ_MUTANT=<name>``): in every process
of the run, xdist workers included, every orchestratord it starts is the mutant
(an ASGI layer, an engine wrapper, a configuration change, a queue class); or,
for a mutant that is a process of its own (a broken restart recovery), the
run's ``--orch-serve-cmd`` starts it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.harness.mutantkit import ConfigChange, EngineWrap, Wrap

__all__ = ["CATALOGUE", "ENV", "Mutant", "Mutation", "by_name"]

ENV = "ORCHQ_MUTANT"
"""The environment variable naming the mutant a run is against (this module as a plugin)."""


@dataclass(frozen=True)
class Mutation:
    """How a run becomes the mutant (at most one of each kind)."""

    wrap_app: Wrap | None = None
    token_wrap: Callable[[str], Wrap] | None = None
    """``wrap_app`` of a server that has a token, built from its token (auth mutants)."""
    wrap_engine: EngineWrap | None = None
    change_config: ConfigChange | None = None
    queue: type | None = None
    """A replacement for orchestratord's ``PoolQueue`` (servers and the queue properties)."""
    serve_command: str | None = None
    """A serve command that starts the mutant (``--orch-serve-cmd``)."""
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    """Patches orchestratord's own code in the run's processes (the runs mutants)."""

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make every orchestratord this process starts the mutant."""
        from tests.harness.mutantkit import mutate_every_server

        if self.wrap_app or self.token_wrap or self.wrap_engine or self.change_config:
            mutate_every_server(
                monkeypatch,
                wrap_app=self.wrap_app,
                token_wrap=self.token_wrap,
                wrap_engine=self.wrap_engine,
                change_config=self.change_config,
            )
        if self.patch is not None:
            self.patch(monkeypatch)
        if self.queue is not None:
            import orchestrator.queue
            import orchestrator.queue.admission
            import orchestrator.runtime.pool

            for module in (
                orchestrator.queue,
                orchestrator.queue.admission,
                orchestrator.runtime.pool,
            ):
                monkeypatch.setattr(module, "PoolQueue", self.queue)


@dataclass(frozen=True)
class Mutant:
    name: str
    area: str
    """The mutant module it comes from (``wire``, ``engine``, ...)."""
    breaks: str
    """The requirement it breaks."""
    mutation: Mutation
    module: str
    """The conformance module its own self-test runs."""
    selection: str | None = None
    """The ``-k`` its own self-test uses (``None``: the whole module)."""
    extra: tuple[str, ...] = field(default=())
    """Further pytest arguments its checks need (a token for the auth matrix)."""


def _build() -> list[Mutant]:
    from tests.harness.determinism import mutants as determinism
    from tests.harness.engine import mutants as engine
    from tests.harness.fixtures import mutants as fixtures
    from tests.harness.fuzz import mutants as fuzz
    from tests.harness.metrics import mutants as metrics
    from tests.harness.pact import pact_mutants
    from tests.harness.properties import mutants as properties
    from tests.harness.restart import mutants as restart
    from tests.harness.runs import mutants as runs
    from tests.harness.webhooks import mutants as webhooks
    from tests.harness.wire import wire_mutants as wire

    out: list[Mutant] = []
    for name, (wrap, module, selection, req) in wire.MUTANTS.items():
        out.append(Mutant(name, "wire", req, Mutation(wrap_app=wrap), module, selection))
    for name, (wrap, module, selection, req) in wire.IN_PROCESS_MUTANTS.items():
        out.append(Mutant(name, "wire", req, Mutation(wrap_app=wrap), module, selection))
    for name, (make, selection, req) in wire.AUTH_MUTANTS.items():
        mutation = Mutation(token_wrap=make)
        out.append(Mutant(name, "auth", req, mutation, "test_contract_auth", selection))
    for name, (wrap, selection, req) in {
        **wire.BOUND_MUTANTS,
        **wire.CONFIGURED_BOUND_MUTANTS,
    }.items():
        out.append(
            Mutant(name, "bounds", req, Mutation(wrap_app=wrap), "test_contract_bounds", selection)
        )
    for name, (wrap, _config, selection, req) in fuzz.MUTANTS.items():
        out.append(Mutant(name, "fuzz", req, Mutation(wrap_app=wrap), "test_fuzz", selection))
    for name, (transform, req) in {**metrics.MUTANTS, **metrics.TRUTH_MUTANTS}.items():
        wrap = metrics.metrics_rewriter(transform)
        out.append(Mutant(name, "metrics", req, Mutation(wrap_app=wrap), "test_metrics"))
    for name, (transform, req) in metrics.RUN_MUTANTS.items():
        wrap = metrics.metrics_rewriter(transform)
        out.append(Mutant(name, "metrics", req, Mutation(wrap_app=wrap), "test_metrics_runs"))
    for name, (keywords, module, selection, req) in engine.MUTANTS.items():
        out.append(Mutant(name, "engine", req, Mutation(**keywords), module, selection))
    for name, (keywords, selection, req) in determinism.MUTANTS.items():
        mutation = Mutation(**keywords)
        out.append(Mutant(name, "determinism", req, mutation, "test_determinism", selection))
    for name, (queue, req) in properties.MUTANTS.items():
        out.append(Mutant(name, "properties", req, Mutation(queue=queue), "test_properties"))
    for name, (wrap, interaction, req) in pact_mutants.MUTANTS.items():
        selection = " and ".join(interaction.split())  # a -k expression of its words
        out.append(
            Mutant(name, "contract", req, Mutation(wrap_app=wrap), "test_contract", selection)
        )
    for name, (wrap, req, module) in fixtures.MUTANTS.items():
        out.append(Mutant(name, "fixtures", req, Mutation(wrap_app=wrap), module))
    for name, (_mutate, req) in restart.MUTANTS.items():
        mutation = Mutation(serve_command=restart.serve_command(name))
        out.append(Mutant(name, "restart", req, mutation, "test_contract_restart"))
    for name, (_mutate, req) in restart.RUN_MUTANTS.items():
        mutation = Mutation(serve_command=restart.serve_command(name))
        out.append(Mutant(name, "runs", req, mutation, "test_contract_runs_restart"))
    for name, (_mutate, req) in restart.CHECKPOINT_RESTART_MUTANTS.items():
        mutation = Mutation(serve_command=restart.serve_command(name))
        out.append(Mutant(name, "runs", req, mutation, "test_contract_checkpoints_restart"))
    for name, (_mutate, req) in restart.SUBORCH_RESTART_MUTANTS.items():
        mutation = Mutation(serve_command=restart.serve_command(name))
        out.append(Mutant(name, "runs", req, mutation, "test_contract_suborch_restart"))
    for name, (patch, selection, req) in runs.MUTANTS.items():
        out.append(
            Mutant(name, "runs", req, Mutation(patch=patch), "test_contract_runs", selection)
        )
    for name, (patch, selection, req) in webhooks.MUTANTS.items():
        mutation = Mutation(patch=patch)
        out.append(Mutant(name, "webhooks", req, mutation, "test_contract_webhooks", selection))
    for name, (_mutate, req) in restart.WEBHOOK_MUTANTS.items():
        mutation = Mutation(serve_command=restart.serve_command(name))
        selection = webhooks.RESTART_SELECTION
        out.append(Mutant(name, "webhooks", req, mutation, "test_contract_webhooks", selection))
    for name, (patch, selection, req) in runs.CHECKPOINT_MUTANTS.items():
        mutation = Mutation(patch=patch)
        out.append(Mutant(name, "runs", req, mutation, "test_contract_checkpoints", selection))
    for name, (patch, selection, req) in runs.SUBORCH_MUTANTS.items():
        mutation = Mutation(patch=patch)
        out.append(Mutant(name, "runs", req, mutation, "test_contract_suborch", selection))
    names = [m.name for m in out]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"mutant names must be unique: {sorted(duplicates)}")
    return out


CATALOGUE: list[Mutant] = _build()
"""Every mutant of the self-tests, in area order."""


def by_name(name: str) -> Mutant:
    for mutant in CATALOGUE:
        if mutant.name == name:
            return mutant
    raise KeyError(f"no mutant named {name!r}")


def pytest_configure(config: pytest.Config) -> None:
    """As a plugin (``-p tests.harness.catalogue``): make the run the mutant ``$ORCHQ_MUTANT``."""
    name = os.environ.get(ENV, "")
    if not name:
        return
    mutant = by_name(name)
    monkeypatch = pytest.MonkeyPatch()
    mutant.mutation.apply(monkeypatch)
    config.add_cleanup(monkeypatch.undo)


def describe(mutant: Mutant) -> dict[str, Any]:
    """A mutant as plain data (what ``--list`` prints)."""
    return {
        "name": mutant.name,
        "area": mutant.area,
        "breaks": mutant.breaks,
        "module": mutant.module,
        "selection": mutant.selection,
        "serve_command": mutant.mutation.serve_command is not None,
    }
