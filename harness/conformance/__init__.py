"""The packaged OrchQueue v1 conformance suite.

Run it against the in-process reference orchestratord (the default) or any
implementation at a URL::

    pytest --pyargs harness.conformance [--orch-url URL --orch-token T] [-m contract]

One module per suite (``test_contract``, ``test_fuzz``, ``test_properties``,
``test_determinism``, ``test_metrics``); every test cites the ORCH IDs it
verifies with ``@pytest.mark.req`` so failures name the requirement broken.
"""
