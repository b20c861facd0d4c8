"""The ``brats-goat`` root command: every subcommand lives in its own module and is added here.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error; ``predict``
also 3 (its report file could not be written) and 130/143 (stopped by SIGINT/SIGTERM).
"""

from __future__ import annotations

import click

from brats_goat import __version__
from brats_goat.cli.calibrate import calibrate_cmd
from brats_goat.cli.evaluate import evaluate
from brats_goat.cli.merge_reports import merge_reports
from brats_goat.cli.predict import predict_cmd
from brats_goat.cli.train import train_cmd
from brats_goat.io.discover import DiscoveryError
from brats_goat.model.manifest import WeightsError
from brats_goat.synth.cli import synth


class BratsGoat(click.Group):
    """The root group. An INPUT layout that cannot be read as cases, or weights that cannot
    be used, is a usage error (exit 2) in every command, never a traceback; commands that
    need more (``predict`` removes what it created) handle these errors themselves first."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (DiscoveryError, WeightsError) as exc:
            raise click.UsageError(str(exc)) from exc


@click.group(cls=BratsGoat, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="brats-goat")
def main() -> None:
    """Label-free brain-tumour segmentation of BraTS cases (MViT-AE)."""


main.add_command(predict_cmd)
main.add_command(train_cmd)
main.add_command(calibrate_cmd)
main.add_command(synth)
main.add_command(evaluate)
main.add_command(merge_reports)


if __name__ == "__main__":  # pragma: no cover
    main()
