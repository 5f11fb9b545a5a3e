"""The ``orchq`` pytest plugin: the one ``pytest11`` entry point, which loads the rest.

Installing orchq must not change a pytest run that does not use it, so every
module loaded here imports only the standard library and pytest at start-up,
registers only ``orch``-prefixed options, fixtures and markers, runs no
autouse fixture, and acts only when used: traceability when the project opts
in (:mod:`.trace`), the guards only around tests that use an orchq fixture.
``-p no:orchq`` turns all of it off, like ``-p no:django`` or ``-p no:syrupy``.

Settings are command-line options with ini twins, read through one helper
(:mod:`.settings`); the run's state lives in ``config.stash``.

- :mod:`.target`: the server under test (``orch_target``, ``orch_client``, ``orch_serve``)
- :mod:`.persisted`: the persisted-settings guard and its cross-process lock
- :mod:`.fixtures`: session-first factories (``orch_make_*``, ``orch_db``), ``orch_engine``,
  ``orch_webhook_receiver``
- :mod:`.scripted`: ``orch_scripted_engine``
- :mod:`.leaks`: the leak guard
- :mod:`.trace`: ``@pytest.mark.req``, requirement states, reports and the gate
- :mod:`harness.pact.plugin`, :mod:`harness.fuzz.plugin`,
  :mod:`harness.determinism.plugin`: the Pact, fuzz and snapshot options
"""

# A module is listed after every plugin module it imports, so pytest registers each one
# before anything imports it (otherwise pytest warns it cannot rewrite its asserts).
pytest_plugins = [
    "harness.plugin.persisted",
    "harness.plugin.target",
    "harness.plugin.fixtures",
    "harness.plugin.scripted",
    "harness.plugin.leaks",
    "harness.plugin.trace",
    "harness.pact.plugin",
    "harness.fuzz.plugin",
    "harness.determinism.plugin",
]
