"""Command line: one module per command, each a thin call into the library."""

from brats_goat.cli.main import main

__all__ = ["main"]
