"""One case of a run, from its files to its result in the report: ``segment_case`` (the
library's per-case path) with a progress bar, the case's files written, and any failure
turned into the case's error, so that one case never stops the others."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from tqdm import tqdm

from brats_goat.io.discover import Case
from brats_goat.io.read import CaseError, CaseVolumes
from brats_goat.run.interrupt import RunInterrupted
from brats_goat.run.outputs import (
    check_output_names,
    note_removed,
    remove_earlier_outputs,
    write_outputs,
    write_qc,
)
from brats_goat.run.report import CaseResult
from brats_goat.run.segment_case import SegmentedCase, segment_case
from brats_goat.segmenter import Normalised, Segmenter
from brats_goat.stages.labels import voxels_per_label
from brats_goat.timing import STAGES, Stage, StageTimer


def predict_case(
    case: Case,
    segmenter: Segmenter,
    output_dir: Path,
    *,
    save_maps: bool = False,
    qc_png: bool = False,
    quiet: bool = False,
    reading: Future[CaseVolumes] | None = None,
    normalising: Future[Normalised] | None = None,
    after: dict[Stage, Callable[[], object]] | None = None,
    label_maps: frozenset[str] = frozenset(),
) -> CaseResult:
    """Run one case; any failure becomes an error in its result, never an exception.

    ``reading`` and ``normalising``: the case's ``read_case`` and ``Segmenter.normalise``
    already under way in the background (``ReadAhead``); their errors come out here as the
    read and normalise stages' own. ``after``: what to start as a stage ends (the next
    case's read and normalisation, ``StageTimer``). ``label_maps``: the label maps of the
    run's cases, never removed as this case's out-of-date outputs.
    """
    result = CaseResult(case_id=case.case_id, input=str(case.folder))
    bar = progress_bar(case.case_id, len(STAGES) + int(qc_png), quiet)
    timer = StageTimer(bar, after)
    try:
        check_output_names(case.case_id, save_maps)
        done = segment_case(
            case,
            segmenter,
            keep_images=qc_png,
            timer=timer,
            reading=reading.result if reading is not None else None,
            prepared=normalising.result if normalising else None,
            on_read=lambda volumes: note_read(result, volumes),
        )
        with timer.stage(Stage.WRITE):
            out_path = write_outputs(done, output_dir, save_maps)
        note_segmented(result, done, out_path)
        if qc_png:
            with timer.stage(Stage.QC):
                try:
                    write_qc(case, done, output_dir)
                except Exception as exc:  # a picture must never cost the case its labels
                    result.warnings.append(f"QC picture not written: {exc}")
    except CaseError as exc:
        result.status, result.error = "failed", str(exc)
    except RunInterrupted as exc:  # a signal: the run stops, with this case marked
        if result.status != "ok":  # after its label map was written, the case stays ok
            stage = next(reversed(timer.timings), "start")
            result.status = "interrupted"
            result.error = f"case {case.case_id}: interrupted by {exc.name} during {stage}"
        exc.result = result
        raise
    except Exception as exc:  # a bug or resource error in one case must not stop the others
        result.status = "failed"
        result.error = f"case {case.case_id}: unexpected {type(exc).__name__}: {exc}"
        result.warnings.append(traceback.format_exc(limit=5))
    finally:
        bar.close()
        result.timings_s = timer.timings
        if result.status != "ok":
            note_removed(result, remove_earlier_outputs(case.case_id, output_dir, label_maps))
    return result


def progress_bar(case_id: str, total: int, quiet: bool) -> tqdm:
    """The case's bar of stages on stderr."""
    return tqdm(
        total=total,
        desc=case_id,
        # No bars in logs (containers, CI): they would be pages of carriage-return frames.
        disable=quiet or not sys.stderr.isatty(),
        leave=True,
        file=sys.stderr,
        bar_format="{desc}: {bar:20} {n_fmt}/{total_fmt} {postfix} [{elapsed}]",
    )


def note_read(result: CaseResult, volumes: CaseVolumes) -> None:
    """What the report says of the case as read: kept if its segmentation then fails."""
    result.warnings += volumes.warnings
    result.resampled = volumes.resampled
    result.modalities = list(volumes.present)


def note_segmented(result: CaseResult, done: SegmentedCase, out_path: Path) -> None:
    """The case's result once its label map is written."""
    seg = done.segmentation
    result.status = "ok"
    result.output = str(out_path)
    result.anomaly_score = round(seg.score, 4)
    result.abnormality = seg.abnormality
    # The file's counts (the input's grid), not the 1 mm frame's: a resampled case's differ,
    # and --continue counts the file (probe round 3, F4).
    result.voxels_per_label = voxels_per_label(done.labels)
    result.refine = seg.refine
    result.normalise_left_out = seg.normalise_left_out
    result.warnings += done.notes


def interrupted_result(case: Case, exc: RunInterrupted) -> CaseResult:
    """The running (or next) case's result when the signal came outside ``predict_case``:
    before its first stage."""
    return CaseResult(
        case_id=case.case_id,
        input=str(case.folder),
        status="interrupted",
        error=f"case {case.case_id}: interrupted by {exc.name} during start",
    )
