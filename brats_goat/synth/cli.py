"""``brats-goat synth``: write synthetic BraTS-layout cases (healthy or with tumours)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click

from brats_goat.synth.config import KIND_CHOICES

#: Said, alone, when the phantoms' template package is missing: it is an optional extra, so
#: that `predict` installs do not pull pandas and scikit-learn (exit 2: a usage error).
NEEDS_NILEARN = (
    "brats-goat synth: the phantoms need nilearn (its MNI152 templates); "
    'install them with: pip install "brats-goat[phantoms]"'
)


def require_nilearn() -> None:
    """Exit 2 with one line, before any work, when nilearn cannot be imported."""
    try:
        found = importlib.util.find_spec("nilearn") is not None
    except ValueError:  # sys.modules["nilearn"] is None: an import that is known to fail
        found = False
    if not found:
        click.echo(NEEDS_NILEARN, err=True)
        sys.exit(2)


def check_writable(out: Path) -> None:
    """Create OUT and prove it writable before the first case is generated (seconds of
    work each), so that a read-only OUT is one message, at once, not a traceback."""
    probe = out / f".brats-goat-write-test.{os.getpid()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise click.UsageError(
            f"OUT {out} is not a folder you can write: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
            + "; give a folder you can write"
        ) from exc


@click.command("synth")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--cases", "n_cases", type=click.IntRange(min=1), required=True, help="Number of cases."
)
@click.option("--healthy", is_flag=True, help="Healthy brains only (no lesion, no seg file).")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the case set (0 or more).",
)
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    default="mixed",
    show_default=True,
    help="Tumour kind; 'mixed' draws one per case.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth(out: Path, n_cases: int, healthy: bool, seed: int, kind: str, quiet: bool) -> None:
    """Write N phantom cases to OUT/<ID>/<ID>-{t1n,t1c,t2w,t2f}[,-seg].nii.gz.

    Cases are 240x240x155 at 1 mm on the BraTS grid; tumour cases get an exact label map
    (1 NETC, 2 SNFH, 3 ET). The same seed always gives the same cases.
    """
    require_nilearn()
    from brats_goat.synth.generate import synthesize  # keeps `--help` fast

    check_writable(out)
    try:
        folders = synthesize(
            out, n_cases, seed=seed, kind=kind, healthy=healthy, progress=not quiet
        )
    except OSError as exc:  # a read-only OUT, a path under a file: a message, not a traceback
        where = f" ({exc.filename})" if exc.filename else ""
        raise click.UsageError(
            f"cannot write the cases into OUT {out}{where}: {exc.strerror or exc}; give a "
            "folder you can write"
        ) from exc
    if not quiet:
        click.echo(f"wrote {len(folders)} case(s) to {out}")
