"""The folder runner: ``predict`` segments every case under INPUT into OUTPUT.

The data flow, one module per job: ``folders`` (INPUT's cases; OUTPUT checked, created and
held, ``brats_goat.run.lock``), ``stale`` (files of killed runs removed), ``read_ahead``
(the next case read on a helper thread), ``case`` (one case, isolated: ``segment_case``,
the library's per-case path, then ``outputs``), ``report`` (rewritten after every case, and
the exit code), ``settings`` (the configuration the report holds). A signal marks the
running case and the run ``interrupted`` (``brats_goat.run.interrupt``).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from brats_goat.io.discover import Case
from brats_goat.memory import release_free_memory
from brats_goat.run.case import interrupted_result, predict_case
from brats_goat.run.folders import (
    InputError,
    check_folders,
    find_cases,
    lock_run,
    make_folders,
)
from brats_goat.run.interrupt import RunInterrupted, signals_deferred, stop_on_signals
from brats_goat.run.outputs import (
    MAP_NAMES,
    check_map_collisions,
    fill_in_placeholder,
    note_other_label_maps,
)
from brats_goat.run.progress import RunProgress
from brats_goat.run.qc import require_matplotlib
from brats_goat.run.read_ahead import ReadAhead
from brats_goat.run.report import CaseResult, RunReport, save_report
from brats_goat.run.resume import split_done
from brats_goat.run.settings import run_settings
from brats_goat.run.shard import Shard, select_shard
from brats_goat.run.stale import clean_up_killed_runs
from brats_goat.segmenter import PipelineConfig, Segmenter, make_segmenter

#: Importable from here as before the runner was split by job.
__all__ = ["InputError", "predict", "predict_case"]


def segment_cases(
    cases: list[Case],
    segmenter: Segmenter,
    report: RunReport,
    output_dir: Path,
    report_dir: Path | None,
    *,
    placeholders: bool,
    quiet: bool,
    ahead: ReadAhead,
    notes: dict[str, list[str]] | None = None,
    **case_options: Any,
) -> None:
    """Every case in turn into ``report``, rewritten in ``report_dir`` after each and once
    more with the final state: ``finished``, or ``interrupted`` with the running case
    marked before the signal goes on. ``ahead`` reads the cases; its owner closes it.
    ``notes``: warnings to put first in a case's result (why ``--continue`` runs it)."""
    current: Case | None = None
    start = len(report.cases)  # the results --continue kept come first
    progress = RunProgress(len(cases))
    try:
        for i, case in enumerate(cases, 1):
            if not quiet:
                tqdm.write(progress.line(i, case.case_id), file=sys.stderr)
            current = case
            reading, normalising = ahead.take(i - 1)
            result = predict_case(
                case, segmenter, output_dir, quiet=quiet, reading=reading,
                normalising=normalising, after=ahead.after_stages(i, segmenter), **case_options,
            )  # fmt: skip
            ahead.start(i)  # the case ended before its reconstruction (failed): read now
            del reading, normalising
            release_free_memory()  # the case's freed arrays must not count for the next
            result.warnings[:0] = (notes or {}).get(case.case_id, [])
            report.cases.append(result)
            current = None
            if placeholders and result.status != "ok":
                fill_in_placeholder(case, result, output_dir)
            if report_dir is not None:
                save_report(report, report_dir)
        report.state = "finished"
    except RunInterrupted as exc:
        report.state, report.stopped_by = "interrupted", exc.name
        if current is None and len(report.cases) - start < len(cases):
            current = cases[len(report.cases) - start]  # between two cases: the next was due
        if current is not None:
            report.cases.append(exc.result or interrupted_result(current, exc))
        raise
    except BaseException as exc:  # a bug outside the cases: the report must not say running
        report.state, report.stopped_by = "interrupted", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if report_dir is not None:
            with signals_deferred():
                save_report(report, report_dir)


def announce_kept(kept: list[CaseResult], cases: int, quiet: bool) -> None:
    """Say on stderr how many cases ``--continue`` keeps from an earlier run."""
    if kept and not quiet:
        print(
            f"brats-goat predict: --continue: {len(kept)} of {cases} cases have a valid label "
            f"map of an earlier run in OUTPUT and are not segmented again",
            file=sys.stderr,
        )


def new_report(
    segmenter: Segmenter,
    input_dir: Path,
    output_dir: Path,
    shard: Shard | None,
    cases_found: int,
    cases_to_run: int,
) -> RunReport:
    """The report of a run about to start (``state`` running): everything that decides its
    results (``run_settings``) and how many cases it is to do."""
    return RunReport(
        input=str(input_dir),
        output=str(output_dir),
        **run_settings(segmenter),
        shard=shard.to_dict(cases_found) if shard else None,
        cases_total=cases_to_run,
    )


def check_run(input_dir: Path, output_dir: Path, report_dir: Path | None, qc_png: bool) -> None:
    """The usage errors found before anything is created: the folders, matplotlib for
    ``--qc-png``."""
    check_folders(input_dir, output_dir, report_dir)
    if qc_png:
        try:
            require_matplotlib()
        except RuntimeError as exc:
            raise InputError(str(exc)) from exc


def predict(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    weights: str | Path | None = None,
    config: PipelineConfig | None = None,
    save_maps: bool = False,
    qc_png: bool = False,
    quiet: bool = False,
    segmenter: Segmenter | None = None,
    method: str = "mvitae",
    shard: Shard | None = None,
    report_dir: str | Path | None = None,
    write_report: bool = True,
    placeholders: bool = False,
    resume: bool = False,
) -> RunReport:
    """Segment every case under ``input_dir`` into ``output_dir``; returns the run report.

    With ``shard`` only that part of the sorted cases is run (``brats_goat.run.shard``) and the
    report is ``report-shard-K-of-N.json``. The report file goes to ``report_dir`` (default
    ``output_dir``), or nowhere with ``write_report=False``. ``placeholders``: a failed case
    gets an empty label map in ``output_dir`` (``brats_goat.run.placeholder``) and stays
    failed in the report. ``resume`` (``--continue``): a case whose label map an earlier
    run left valid in ``output_dir`` is reported ``ok`` and not run (``brats_goat.run.resume``).
    Raises ``InputError`` for problems with the run itself (no cases,
    bad output or report folder, another run holding either), and ``RunInterrupted`` on
    SIGINT/SIGTERM, after writing the report (``state`` interrupted, in ``exc.report``).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    own_report_dir = Path(report_dir or output_dir) if write_report else None
    # Everything that can make this a usage error comes before OUTPUT is created or locked.
    check_run(input_dir, output_dir, own_report_dir, qc_png)
    cases = find_cases(input_dir)
    check_map_collisions(cases, save_maps)
    label_maps = frozenset(f"{c.case_id}.nii.gz" for c in cases)  # every shard's too
    all_ids = {c.case_id for c in cases}
    cases_total = len(cases)
    cases = select_shard(cases, shard)
    with stop_on_signals(), ExitStack() as stack:
        maps = MAP_NAMES if save_maps else ()
        kept, to_run, notes = (
            split_done(cases, output_dir, maps, qc_png) if resume else ([], cases, {})
        )
        atol = (segmenter.config if segmenter else config or PipelineConfig()).affine_atol
        ahead = ReadAhead(to_run, atol)
        stack.callback(ahead.close)
        ahead.start(0)  # while the segmenter is built
        segmenter = segmenter or make_segmenter(method, weights, config)
        make_folders(output_dir, own_report_dir)
        locked = lock_run(stack, output_dir, own_report_dir, shard)
        report = new_report(segmenter, input_dir, output_dir, shard, cases_total, len(cases))
        report.cases += kept
        announce_kept(kept, len(cases), quiet)
        clean_up_killed_runs(report, cases, own_report_dir, exclusive=locked and shard is None)
        report.other_label_maps = note_other_label_maps(output_dir, all_ids)
        if own_report_dir is not None:
            # First write before any case: a shard with no cases (N > cases) still has one.
            save_report(report, own_report_dir)
        try:
            segment_cases(
                to_run, segmenter, report, output_dir, own_report_dir,
                placeholders=placeholders, quiet=quiet, ahead=ahead, notes=notes,
                save_maps=save_maps, qc_png=qc_png, label_maps=label_maps,
            )  # fmt: skip
        except RunInterrupted as exc:
            exc.report = report  # also for a signal that came after the last case
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return report
