"""Targets the harness starts, configures, kills and restarts: any implementation, as a process.

- :mod:`.command`: the serve command template (``{port}``, ``{config}``, ``{state_dir}``)
- :mod:`.server`: :class:`~harness.managed.server.ManagedServer`, one target's process
- :mod:`.engine`: the harness's mock engine as a process the targets' replicas use
- :mod:`.children`: process groups, and reaping every one of them

Standard library, httpx and PyYAML only; nothing here imports orchestratord.
"""
