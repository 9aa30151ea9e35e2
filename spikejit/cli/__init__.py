"""The ``spikejit`` command line (typer + rich). Nothing below the CLI imports it."""

from spikejit.cli.app import app, main

__all__ = ["app", "main"]
