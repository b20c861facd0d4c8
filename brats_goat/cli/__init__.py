"""Command line: one module per command, each a thin call into the library.

The command changes the process as the library never does on import: huge-page tensors
and one glibc heap (``brats_goat.memory.tune_process``), set here before anything imports
torch."""

from brats_goat.memory import tune_process

tune_process()

# isort: split

from brats_goat.cli.main import main  # noqa: E402

__all__ = ["main"]
