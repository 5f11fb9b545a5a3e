"""``python -m harness`` runs the ``orchq`` CLI (handy where the script is not on PATH)."""

from harness.cli import main

main()
