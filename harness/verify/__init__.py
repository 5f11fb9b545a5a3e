"""``orchq verify``: the packaged conformance suite run as one command.

``preflight`` proves a target is a reachable OrchQueue v1 server before any
test runs; ``progress`` is the pytest plugin that feeds the live display and
collects first failure lines; ``runner`` builds the pytest invocation;
``cli`` renders the result tables.
"""
