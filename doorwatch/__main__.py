"""``python -m doorwatch`` runs the CLI (used by the demo to start its children)."""

from doorwatch.cli import main

main()
