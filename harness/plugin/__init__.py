"""pytest plugins shipped with orchq (registered through the ``pytest11`` entry point)."""
