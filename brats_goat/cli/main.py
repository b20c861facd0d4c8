"""The ``brats-goat`` root command: every subcommand lives in its own module and is added here.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error; ``predict``
also 3 (its report file could not be written) and 130/143 (stopped by SIGINT/SIGTERM).
"""

from __future__ import annotations

import importlib

import click

from brats_goat._version import __version__
from brats_goat.io.discover import DiscoveryError
from brats_goat.model.manifest import WeightsError

#: Each subcommand's module, imported when that command runs (or for ``--help``): the
#: others' libraries (the scorer, the phantoms, training) are not every run's start-up.
COMMANDS: dict[str, str] = {
    "predict": "brats_goat.cli.predict:predict_cmd",
    "train": "brats_goat.cli.train:train_cmd",
    "calibrate": "brats_goat.cli.calibrate:calibrate_cmd",
    "synth": "brats_goat.synth.cli:synth",
    "evaluate": "brats_goat.cli.evaluate:evaluate",
    "merge-reports": "brats_goat.cli.merge_reports:merge_reports",
}


class BratsGoat(click.Group):
    """The root group. An INPUT layout that cannot be read as cases, or weights that cannot
    be used, is a usage error (exit 2) in every command, never a traceback; commands that
    need more (``predict`` removes what it created) handle these errors themselves first."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[cmd_name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (DiscoveryError, WeightsError) as exc:
            raise click.UsageError(str(exc)) from exc


@click.group(cls=BratsGoat, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brats-goat")
def main() -> None:
    """Label-free brain-tumour segmentation of BraTS cases (MViT-AE)."""


if __name__ == "__main__":  # pragma: no cover
    main()
