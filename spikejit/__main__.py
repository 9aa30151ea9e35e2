"""``python -m spikejit`` runs the command line."""

from spikejit.cli import main

main()
