"""Options and arguments that several commands share, defined once so they cannot drift apart.

Each factory keeps the option's names, type and default fixed and takes only what differs
between the commands (mostly the help text), so every command's ``--help`` reads as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from brats_goat.run.shard import Shard, parse_shard

#: What ``click.option`` returns: it adds the option to the command it decorates.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: ``--device`` values: auto picks CUDA when a GPU is visible.
DEVICES = ("auto", "cpu", "cuda")


def parse_shard_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Shard | None:
    """Parse ``--shard K/N`` into a ``Shard``; a bad value is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def data_argument(*, required: bool = False) -> Decorator:
    """``DATA...``: case folders or folders of them, which must exist."""
    return click.argument(
        "data", nargs=-1, required=required, type=click.Path(exists=True, path_type=Path)
    )


def device_option(**extra: Any) -> Decorator:
    """``--device`` (default auto); ``extra`` adds help or show_default where a command has them."""
    return click.option("--device", type=click.Choice(list(DEVICES)), default="auto", **extra)


def weights_option(help: str) -> Decorator:
    """``--weights``: a checkpoint file or a weights folder; None means the shipped weights."""
    return click.option("--weights", type=click.Path(path_type=Path), default=None, help=help)


def checkpoint_output_option(help: str) -> Decorator:
    """``--output/-o``: the checkpoint a command writes (required: nothing is overwritten)."""
    return click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help=help)


def register_option(what: str) -> Decorator:
    """``--register/--no-register`` for a command that writes ``what`` (a checkpoint)."""
    return click.option(
        "--register/--no-register",
        default=False,
        help=f"Add {what} to the manifest of its folder (and make it the default).",
    )


def batch_size_option(minimum: int, **extra: Any) -> Decorator:
    """``--batch-size`` of at least ``minimum``; default and help differ per command."""
    return click.option("--batch-size", type=click.IntRange(minimum), **extra)


def quiet_option(help: str | None = None) -> Decorator:
    """``--quiet/-q`` flag; what it silences differs per command, hence the help."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


def shard_option() -> Decorator:
    """``--shard K/N``, parsed into a ``Shard`` (or None) before the command runs."""
    return click.option(
        "--shard",
        metavar="K/N",
        default=None,
        callback=parse_shard_option,
        help="Run only part K of N of the cases; join the reports with merge-reports.",
    )
