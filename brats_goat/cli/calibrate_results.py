"""``brats-goat calibrate enhancement | tumour | intensity``: measure a JSON result the
package ships, print it and, with ``--write``, replace the shipped file (``-o``: write it
elsewhere). Each option's default is the setting the shipped file records
(``brats_goat.calibrated.RESULTS``), so a rerun on the same data gives the same file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from brats_goat.calibrated import RESULTS
from brats_goat.cli.options import Decorator

#: A data folder that must exist.
FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


def setting_option(result: str, setting: str, kind: click.ParamType, help: str) -> Decorator:
    """``--<setting>`` with the default ``RESULTS[result]`` records for it."""
    return click.option(
        f"--{setting.replace('_', '-')}",
        setting,
        type=kind,
        default=RESULTS[result].defaults[setting],
        show_default=True,
        help=help,
    )


def output_options(result: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--write`` (the shipped file) and ``-o/--output`` (another file)."""

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Write the result here instead of the shipped {RESULTS[result].file}.",
        )(f)
        return click.option(
            "--write", is_flag=True, help=f"Replace the package's {RESULTS[result].file}."
        )(f)

    return add


def save(result: str, record: dict[str, Any], write: bool, output: Path | None) -> None:
    """Write ``record`` where ``--write`` / ``--output`` say (nowhere without them)."""
    from brats_goat.calibration.records import shipped_path, write_record

    if write and output is not None:
        raise click.UsageError("--write and --output exclude each other")
    target = shipped_path(result) if write else output
    if target is not None:
        write_record(target, record)
        click.echo(f"wrote {target}")


PERCENT = click.FloatRange(0, 100)


@click.command("enhancement")
@click.argument("healthy", type=FOLDER)
@setting_option("enhancement", "percentile", PERCENT, "Healthy t1c percentile: ET threshold.")
@setting_option("enhancement", "grow_percentile", PERCENT, "Healthy t1c percentile ET grows to.")
@output_options("enhancement")
def enhancement_cmd(
    healthy: Path, percentile: float, grow_percentile: float, write: bool, output: Path | None
) -> None:
    """ET thresholds (enhancement.json) from the t1c of the healthy subjects in HEALTHY
    (their <ID>-lesion masks left out)."""
    from brats_goat.calibration.enhancement import enhancement_record

    try:
        record = enhancement_record(healthy, percentile, grow_percentile, click.echo)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    save("enhancement", record, write, output)


@click.command("tumour")
@click.argument("healthy", type=FOLDER)
@setting_option("tumour", "t2w_percentile", PERCENT, "Healthy T2w percentile a tumour exceeds.")
@setting_option("tumour", "t1c_percentile", PERCENT, "Healthy t1c percentile a core is below.")
@output_options("tumour")
def tumour_cmd(
    healthy: Path, t2w_percentile: float, t1c_percentile: float, write: bool, output: Path | None
) -> None:
    """Healthy T2w and t1c levels of the whole-tumour stage (tumour.json) from the healthy
    subjects in HEALTHY (their <ID>-lesion masks left out)."""
    from brats_goat.calibration.tumour import tumour_record

    record = tumour_record(healthy, t2w_percentile, t1c_percentile, click.echo)
    save("tumour", record, write, output)


@click.command("intensity")
@click.argument("healthy", type=FOLDER, required=False)
@click.option(
    "--tumour-cases",
    type=FOLDER,
    multiple=True,
    help="Tumour cases whose slices far from their label map count as healthy too.",
)
@setting_option("intensity", "percentile", PERCENT, "Map percentile that becomes the threshold.")
@setting_option("intensity", "lesion_margin", click.IntRange(0), "Voxels kept from lesions.")
@setting_option("intensity", "tumour_margin", click.IntRange(0), "Slices kept from tumours.")
@setting_option("intensity", "min_brain_voxels", click.IntRange(1), "Least brain per slice.")
@output_options("intensity")
@click.option("--phantoms", is_flag=True, help="The earlier phantom calibration (print only).")
@click.option("--cases", type=click.IntRange(1), default=8, show_default=True, help="Phantoms.")
@click.option("--seed", type=int, default=1000, show_default=True, help="Their seed.")
def intensity_cmd(
    healthy: Path | None,
    tumour_cases: tuple[Path, ...],
    write: bool,
    output: Path | None,
    phantoms: bool,
    cases: int,
    seed: int,
    **settings: Any,
) -> None:
    """Thresholds of the intensity baseline (intensity_baseline.json) from whole healthy
    volumes in HEALTHY (known lesions left out) and the far slices of --tumour-cases; with
    --phantoms, from healthy phantoms instead (printed, never written)."""
    from brats_goat.calibration.intensity import intensity_record, phantom_thresholds

    if phantoms:
        phantom_thresholds(seed, cases, settings["percentile"], click.echo)
        return
    if healthy is None:
        raise click.UsageError("HEALTHY is needed (or --phantoms)")
    ordered = {k: settings[k] for k in RESULTS["intensity"].defaults}  # as the file records
    record = intensity_record(healthy, list(tumour_cases), ordered, click.echo)
    click.echo(json.dumps(record["postprocess"], indent=1))
    save("intensity", record, write, output)


RESULT_COMMANDS = (enhancement_cmd, tumour_cmd, intensity_cmd)
