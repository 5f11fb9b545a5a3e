"""orchestratord: the OrchQueue v1 reference orchestrator.

The public surface other packages may depend on is :mod:`orchestrator.schemas`
(the wire models), :mod:`orchestrator.client` (the typed HTTP client),
:mod:`orchestrator.vocabulary` (the wire's states, priorities and error kinds) and
:func:`orchestrator.api.create_app`.
Everything else is internal.
"""

__version__ = "0.1.0"
