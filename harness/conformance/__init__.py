"""The packaged OrchQueue v1 conformance suite.

Run it against the in-process reference orchestratord (the default) or any
implementation at a URL::

    pytest --pyargs harness.conformance [--orch-url URL --orch-token T] [-m contract]

One module per suite (``test_contract``, ``test_fuzz``, ``test_properties``,
``test_determinism``, ``test_metrics``); every test cites the ORCH IDs it
verifies with ``@pytest.mark.req`` so failures name the requirement broken.
The suite markers are registered by this package's ``conftest.py``, only where
the suite runs; ``conformance.ini`` holds the settings ``orchq verify`` runs it
with, whatever folder it is started in.
"""

from __future__ import annotations

SUITE_MARKERS: dict[str, str] = {
    "contract": "Pact consumer/provider contract tests of the OrchQueue v1 API",
    "fuzz": "Schemathesis fuzzing over the OpenAPI document (contracts/openapi/orchqueue.yaml)",
    "properties": "Hypothesis properties of the admission queue",
    "determinism": "seeded determinism: byte-exact streams across replicas, snapshots",
    "metrics": "the /metrics contract (contracts/metrics.lint.json, promtool rules)",
    "e2e": "end to end against a real model engine (needs ORCHQ_REAL_ENGINE=1)",
}
"""Each suite's marker and its ``--markers`` help text; one marker per conformance test."""

DEFAULT_SUITES: tuple[str, ...] = ("contract", "fuzz", "properties", "determinism", "metrics")
"""The suites ``orchq verify`` runs unless told otherwise (``e2e`` needs a real model)."""

REFERENCE_CODE = "orch_reference_code"
"""Marker of a conformance test that drives orchestratord's own code in-process (the queue
properties): it says nothing about a target the harness starts from another command, so it
is deselected there (:mod:`harness.conformance.conftest`)."""

NOT_VERIFIABLE_LIVE = "NOT VERIFIABLE against --orch-url"
"""Prefix of every skip reason meaning "this check needs a server the harness configures".

``orchq verify --target`` recognises it: a requirement whose citing tests were
all skipped this way is reported as not verifiable live, neither passed nor
violated.
"""

LIVE_TARGET_SKIP = f"{NOT_VERIFIABLE_LIVE}: needs an in-process orchestratord it can configure"

PROFILE_MARKER = "orch_profile"
"""Marker of a conformance test of an optional profile: ``orch_profile("runs")``."""
OPTIONAL_PROFILES: dict[str, str] = {"runs": "12 Runs"}
"""Each optional profile of the spec and the section that states it."""
CORE_PROFILE = "core"
"""``--orch-profile core``: the target claims none of the optional profiles."""
NOT_CLAIMED = "NOT CLAIMED by the target"
"""Prefix of the skip reason of a check of a profile the target does not claim
(``--orch-profile core``): ``orchq verify`` reports its requirements as *not claimed*,
neither passed nor violated. Without the option every profile is claimed, so a target
without runs fails their checks: it never passes them by answering 404."""
