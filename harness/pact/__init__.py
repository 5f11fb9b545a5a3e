"""Pact contracts between our client (``orchq-client``) and OrchQueue v1 (``orchestratord``).

One table (:mod:`harness.pact.interactions`, written with :mod:`harness.pact.examples`)
states every interaction (:class:`harness.pact.model.Interaction`) once, with the ORCH
IDs it pins. The consumer tests (``tests/harness/pact``) record it by
driving :class:`orchestrator.client.OrchClient` against the Pact mock server; the
provider verification (``harness/conformance/test_contract.py``) replays the
recorded pact against any OrchQueue v1 server with the provider states of
:mod:`harness.pact.states`; :mod:`harness.pact.pactfiles` keeps the
committed ``contracts/pacts/`` byte-stable and ``orchq pact regen --check`` current.

Around the pact: :mod:`harness.pact.crosscheck` checks any pact against an
OpenAPI document (``orchq pact check``), :mod:`harness.pact.stub` serves one
with the Pact stub server (``orchq pact stub``), and :mod:`harness.pact.faults` is
the engine factory that makes orchestratord fail unexpectedly for the ``INTERNAL``
interactions.
"""
