"""``brats-goat predict``: segment a folder of cases with ``brats_goat.run.predict``.

Exit codes: 0 every case succeeded, 1 at least one case failed, 2 usage error (no cases,
unusable weights or options, OUTPUT in use by another run), 3 the report file could not
be written, 130/143 stopped by SIGINT/SIGTERM (the report says ``interrupted``). With
``--on-case-failure placeholder`` (the container's default, for the BraTS orchestrator) a
failed case gets an empty label map and the exit code is 0 when every case has its file;
failures are still named in the log and report.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from brats_goat.cli.options import (
    batch_size_option,
    device_option,
    quiet_option,
    shard_option,
    weights_option,
)
from brats_goat.device import PRECISIONS
from brats_goat.io.discover import DiscoveryError
from brats_goat.model.manifest import WeightsError
from brats_goat.run.folders import InputError, missing_folders, remove_empty
from brats_goat.run.interrupt import RunInterrupted
from brats_goat.run.predict import predict
from brats_goat.run.report import (
    EXIT_NO_REPORT,
    REPORT_BEGIN,
    REPORT_END,
    RunReport,
    exit_status,
)
from brats_goat.run.settings import pipeline_config, run_settings
from brats_goat.run.shard import Shard
from brats_goat.segmenter import COMPONENT_RULES, METHODS, PipelineConfig, make_segmenter
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import REFINE_BACKENDS, SAM_MODELS, RefineConfig
from brats_goat.stages.runtime import RUNTIMES
from brats_goat.stages.sam_backends import SAM_CHECKPOINT_ENV


def warn_unused_weights(method: str, weights: Path | None) -> None:
    """``--weights`` means nothing to the intensity baseline: say so rather than let a user
    believe (or a typo in the path go unnoticed) that the file was used."""
    if method == "intensity" and weights is not None:
        click.echo(
            f"brats-goat predict: warning: --weights {weights} is ignored: --method intensity "
            "uses no weights",
            err=True,
        )


#: ``--on-case-failure`` choices: what a failed case leaves and what it does to the exit code.
ON_CASE_FAILURE = ("exit-1", "placeholder")


def echo_report(report: RunReport, report_path: Path | None, quiet: bool, full: bool) -> None:
    """The full report (``--print-report``), then the summary table, or with ``--quiet`` only
    the failures (on stderr, for scripts)."""
    if full:
        click.echo(f"{REPORT_BEGIN}\n{report.to_json()}{REPORT_END}")
    if not quiet:
        click.echo(report.summary_table())
        where = report_path or "no file (--no-report-file)" + (", printed above" if full else "")
        click.echo(f"report: {where}")
    elif not report.ok:
        for case in report.cases:
            if case.error:
                word = "INTERRUPTED" if case.status == "interrupted" else "FAILED"
                click.echo(f"{word} {case.case_id}: {case.error}", err=True)


def print_results(report: RunReport, report_path: Path | None, quiet: bool, full: bool) -> str:
    """``echo_report``; an empty string, or why stdout could not take it (a closed pipe,
    ``> /dev/full``). A run whose cases are done must not end in a traceback, or exit 1
    without a word, for want of its summary table."""
    try:
        echo_report(report, report_path, quiet, full)
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        silence_stdout()
        return f"cannot print to stdout: {exc.strerror or exc}"
    return ""


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        sys.stdout = None


@click.command("predict")
@click.argument("input_dir", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path))
@weights_option("Checkpoint file or weights folder with manifest.json (default: shipped weights).")
@device_option(show_default=True, help="auto = CUDA when a GPU is visible, else CPU.")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="mvitae",
    show_default=True,
    help="mvitae = the autoencoder; intensity = training-free FLAIR/t1c z-score baseline.",
)
@batch_size_option(1, default=None, help="Slices per forward pass.")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default=InferenceConfig.runtime,
    show_default=True,
    help="CPU runtime: auto = the fastest measured per network; torch = eager (the "
    "reference). GPUs run torch.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=InferenceConfig.precision,
    show_default=True,
    help="auto = float32 on every machine; bfloat16 is faster on some CPUs but changes the labels.",
)
@click.option(
    "--refine",
    type=click.Choice(REFINE_BACKENDS),
    default=RefineConfig.backend,
    show_default=True,
    help="SAM-family refinement (opt-in). auto = $BRATS_GOAT_REFINE if set, else none.",
)
@click.option(
    "--sam-model",
    type=click.Choice(SAM_MODELS),
    default=RefineConfig.sam_model,
    show_default=True,
    help="Architecture of the --sam-checkpoint (--refine sam).",
)
@click.option(
    "--sam-checkpoint",
    type=click.Path(path_type=Path),
    envvar=SAM_CHECKPOINT_ENV,
    show_envvar=True,
    default=None,
    help="Official SAM checkpoint file (--refine sam).",
)
@click.option(
    "--refine-max-slices",
    type=click.IntRange(0),
    default=None,
    help=f"Slices refined per channel and case, 0 = all [default: {RefineConfig.max_slices} "
    "on CPU, all on GPU].",
)
@click.option(
    "--components",
    "component_rule",
    type=click.Choice(COMPONENT_RULES),
    default=PipelineConfig.component_rule,
    show_default=True,
    help="Components kept per channel; largest+peaks finds several metastases but adds "
    "false positives.",
)
@click.option("--save-maps", is_flag=True, help="Also write float32 anomaly maps per case.")
@click.option("--qc-png", is_flag=True, help="Also write OUTPUT/qc/<ID>.png (needs matplotlib).")
@shard_option()
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the report [default: OUTPUT].",
)
@click.option(
    "--no-report-file",
    is_flag=True,
    help="Write no report file.",
)
@click.option(
    "--print-report",
    is_flag=True,
    help="Print the report (JSON) at the end.",
)
@click.option(
    "--on-case-failure",
    type=click.Choice(ON_CASE_FAILURE),
    default="exit-1",
    show_default=True,
    help="placeholder: a failed case gets an empty label map and exit 0 (what the BraTS "
    "orchestrator needs); it stays failed in the report.",
)
@click.option(
    "--continue",
    "resume",
    is_flag=True,
    help="Skip cases whose label map an earlier run left valid in OUTPUT (reported ok, "
    "marked skipped); a placeholder or invalid file is segmented again.",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the configuration the run would use (JSON: the report's header) and exit "
    "without running.",
)
@quiet_option("No progress bars or summary table.")
def predict_cmd(
    input_dir: Path,
    output_dir: Path,
    weights: Path | None,
    device: str,
    method: str,
    batch_size: int | None,
    runtime: str,
    precision: str,
    refine: str,
    sam_model: str,
    sam_checkpoint: Path | None,
    refine_max_slices: int | None,
    component_rule: str,
    save_maps: bool,
    qc_png: bool,
    shard: Shard | None,
    report_dir: Path | None,
    no_report_file: bool,
    print_report: bool,
    on_case_failure: str,
    resume: bool,
    print_config: bool,
    quiet: bool,
) -> None:
    """Segment every case in INPUT (a folder of case folders, or one case folder).

    Writes OUTPUT/<ID>.nii.gz (uint8, labels 1 NETC, 2 SNFH, 3 ET, input geometry) per case
    and OUTPUT/report.json. Exit 0 if all cases succeeded, 1 if any failed, 2 on a usage
    error. Every option: docs/cli.md.
    """
    if report_dir is not None and no_report_file:
        raise click.UsageError("--report-dir and --no-report-file exclude each other")
    config = pipeline_config(
        device,
        batch_size,
        refine,
        sam_model,
        sam_checkpoint,
        refine_max_slices,
        component_rule,
        runtime,
        precision,
    )
    warn_unused_weights(method, weights)
    if print_config:
        sys.exit(print_settings(method, weights, config))
    report_folder = None if no_report_file else report_dir or output_dir
    created = missing_folders(output_dir, None if no_report_file else report_dir)
    try:
        report = predict(
            input_dir,
            output_dir,
            weights=weights,
            config=config,
            save_maps=save_maps,
            qc_png=qc_png,
            quiet=quiet,
            method=method,
            shard=shard,
            report_dir=report_dir,
            write_report=not no_report_file,
            placeholders=on_case_failure == "placeholder",
            resume=resume,
        )
    except USAGE_ERRORS as exc:
        remove_empty(created)  # a usage error leaves nothing behind
        raise click.UsageError(str(exc)) from exc
    except RunInterrupted as exc:
        sys.exit(interrupted(exc, report_folder, quiet, print_report))
    sys.exit(finished(report, report_folder, quiet, print_report, on_case_failure))


#: What ``predict`` raises for a run that cannot start: exit 2, with the message.
USAGE_ERRORS = (InputError, DiscoveryError, WeightsError, RuntimeError)


def print_settings(method: str, weights: Path | None, config: PipelineConfig) -> int:
    """``--print-config``: the settings the run would use (``run_settings``, which its
    report's header holds) as JSON on stdout, from the segmenter it would build; nothing
    is read from INPUT or created in OUTPUT."""
    try:
        segmenter = make_segmenter(method, weights, config)
    except USAGE_ERRORS as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps(run_settings(segmenter), indent=2))
    return 0


def finished(
    report: RunReport,
    report_folder: Path | None,
    quiet: bool,
    full: bool,
    on_case_failure: str,
) -> int:
    """The end of a run that went through its cases: the report printed, the failures named
    on stderr, and the exit code (``exit_status``; 3 when the run's only record is missing:
    its report file, or the printed report without one)."""
    report_path = report_folder / report.file_name if report_folder else None
    not_printed = print_results(report, report_path, quiet, full)
    code, lines = exit_status(report, on_case_failure == "placeholder")
    for line in lines:
        click.echo(line, err=True)
    if not_printed:
        where = f"the report is {report_path}" if report_path else "no report file was written"
        click.echo(f"brats-goat predict: WARNING: {not_printed}; {where}", err=True)
        if report_path is None and full:  # the printed report was the only record
            code = EXIT_NO_REPORT
    if report.report_file_error:  # the run's only record would be missing: never exit 0
        click.echo(f"brats-goat predict: exit 3: {report.report_file_error}", err=True)
        code = EXIT_NO_REPORT
    return code


def interrupted(exc: RunInterrupted, report_folder: Path | None, quiet: bool, full: bool) -> int:
    """What a signal leaves: the report as written (printed as at the end of a run), a line
    on stderr, and the exit code 128 + signal number (130 SIGINT, 143 SIGTERM)."""
    report = exc.report
    if report is not None:
        report_path = report_folder / report.file_name if report_folder else None
        echo_report(report, report_path, quiet, full)
        progress = report.progress_line()
        if report.report_file_error:
            progress += f"; {report.report_file_error}"
    else:
        progress = f"stopped by {exc.name} before any case was started"
    click.echo(f"brats-goat predict: {progress}; exit {exc.exit_code}", err=True)
    return exc.exit_code
