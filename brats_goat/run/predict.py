"""The folder runner: ``predict`` segments every case under INPUT into OUTPUT.

Per-case isolation (one failure never stops the others), progress bars, and outputs written
atomically in the input's geometry. The run report is true at every moment: it is
rewritten after every case with the number of cases and the run's state, a signal marks
the running case and the run ``interrupted`` (``brats_goat.run.interrupt``), a case whose
output cannot be written (a full disk) fails alone. One run at a time per OUTPUT
(``brats_goat.run.lock``), and files that killed runs left behind are removed at the
start. The segmentation itself is ``brats_goat.segmenter``.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from brats_goat.io.discover import MAX_CASE_DEPTH, Case, discover_cases
from brats_goat.io.read import CaseError, CaseVolumes, load_case, load_reference_labels
from brats_goat.io.resample import to_model_frame
from brats_goat.io.write import (
    NAME_MAX,
    as_label_map,
    find_temp_files,
    like_reference,
    temp_key,
    write_nifti_atomic,
)
from brats_goat.memory import release_free_memory
from brats_goat.parallel import helper_pool
from brats_goat.run.interrupt import RunInterrupted, signals_deferred, stop_on_signals
from brats_goat.run.lock import FolderBusy, lock_folders, stale_shard_locks
from brats_goat.run.placeholder import write_placeholder
from brats_goat.run.progress import RunProgress
from brats_goat.run.qc import require_matplotlib, write_qc_png
from brats_goat.run.report import CaseResult, RunReport
from brats_goat.run.resume import split_done
from brats_goat.run.shard import Shard, select_shard
from brats_goat.segmenter import (
    STAGES,
    Normalised,
    PipelineConfig,
    Segmentation,
    Segmenter,
    make_segmenter,
)
from brats_goat.serialise import to_dict
from brats_goat.stages.labels import voxels_per_label
from brats_goat.timing import StageTimer

#: The write probe of ``check_folders`` (``.<name>.<PID>``) and of the container's entry
#: point (the same name): left behind only by a run killed in that instant.
PROBE_NAME = ".brats-goat-write-test"
_PROBE = re.compile(r"^\.brats-goat-write-test(?:\.\d+)?$")


class InputError(Exception):
    """A problem with the run as a whole (usage), as opposed to one case."""


def check_folders(input_dir: Path, output_dir: Path, report_dir: Path | None = None) -> None:
    """Usage errors that make the whole run pointless, found without creating anything:
    INPUT is no folder; OUTPUT (or the report folder) is a file, or is INPUT or inside it.
    Checked first, so that discovery never walks into a folder the run would write."""
    if not input_dir.is_dir():
        raise InputError(f"INPUT {input_dir} is not a folder")
    inp = input_dir.resolve()
    for what, folder in _out_folders(output_dir, report_dir):
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"{what} {folder} exists and is not a folder; give a folder (it is created "
                "when missing)"
            )
        out = folder.resolve()
        if out == inp or inp in out.parents:
            raise InputError(
                f"{what} {folder} is INPUT or inside it: outputs would mix with the inputs "
                "(and inputs are never modified); choose a separate folder"
            )


def make_folders(output_dir: Path, report_dir: Path | None = None) -> None:
    """Create OUTPUT (and the report folder) and prove them writable with a probe file.
    Called only once the cases and the segmenter are known to be usable, so that a usage
    error leaves no folder behind."""
    for what, folder in _out_folders(output_dir, report_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f"{PROBE_NAME}.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise InputError(f"{what} {folder} is not writable: {exc}") from exc


def _out_folders(output_dir: Path, report_dir: Path | None) -> list[tuple[str, Path]]:
    """``(what, folder)`` for OUTPUT and, when the report goes elsewhere, its folder."""
    folders = [("OUTPUT", output_dir)]
    if report_dir is not None and report_dir.resolve() != output_dir.resolve():
        folders.append(("the report folder", report_dir))
    return folders


def find_cases(input_dir: Path) -> list[Case]:
    """The cases under INPUT (``discover_cases``); ``InputError`` when there are none, with
    the rule, so that a user sees where the cases were looked for."""
    cases = discover_cases(input_dir)
    if not cases:
        raise InputError(
            f"no cases found in {input_dir}: expected case folders holding files like "
            "<ID>-t1n.nii.gz, <ID>-t1c.nii.gz, <ID>-t2w.nii.gz, <ID>-t2f.nii.gz (or INPUT "
            f"being one), searched down to {MAX_CASE_DEPTH} folder levels below INPUT "
            "(INPUT/<ID>/ is level 1)"
        )
    return cases


def write_outputs(
    volumes: CaseVolumes, seg: Segmentation, output_dir: Path, save_maps: bool
) -> Path:
    """Labels (and optionally float32 maps) in the input's storage order and header geometry.

    The label map is written last, so that its presence means the case is complete. An
    ``OSError`` (a full disk, a quota, a read-only mount) fails the case with the file and
    the cause, and removes what the case had written: a failed case leaves no files.
    """
    written: list[Path] = []
    target = output_dir / f"{volumes.case_id}.nii.gz"
    try:
        if save_maps:
            for name, anomaly in seg.maps.items():
                target = output_dir / f"{volumes.case_id}-anomaly-{name}.nii.gz"
                image = like_reference(volumes.to_stored(anomaly), volumes.reference, np.float32)
                written.append(write_nifti_atomic(image, target))
        target = output_dir / f"{volumes.case_id}.nii.gz"
        labels = volumes.to_stored(seg.labels)
        image = as_label_map(like_reference(labels, volumes.reference, np.uint8))
        return write_nifti_atomic(image, target)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise CaseError(f"case {volumes.case_id}: cannot write {target}: {exc}") from exc


#: The anomaly maps ``--save-maps`` writes per case (``<ID>-anomaly-<name>.nii.gz``).
MAP_NAMES: tuple[str, ...] = ("t1c", "t2f")


def case_output_files(case_id: str, output_dir: Path) -> list[Path]:
    """Every file a run may write for case ``case_id``: its label map, its anomaly maps and
    its QC picture."""
    maps = [output_dir / f"{case_id}-anomaly-{name}.nii.gz" for name in MAP_NAMES]
    return [output_dir / f"{case_id}.nii.gz", *maps, output_dir / "qc" / f"{case_id}.png"]


def remove_earlier_outputs(
    case_id: str, output_dir: Path, keep: frozenset[str] = frozenset()
) -> list[str]:
    """Remove what an earlier run wrote for a case that has now failed (or was cut short):
    its old label map would otherwise be taken for this run's result, and scored
    (issue 27). ``keep``: the run's label maps (case ``X-anomaly-t2f`` is ``X``'s t2f map's
    name). Returns the files removed; one that cannot be removed is named too."""
    removed = []
    own = output_dir / f"{case_id}.nii.gz"
    for path in case_output_files(case_id, output_dir):
        too_long = len(path.name.encode()) > NAME_MAX  # no file can have that name
        anothers = path != own and path.parent == output_dir and path.name in keep
        if too_long or anothers:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            removed.append(f"{path} (could not be removed: {exc.strerror})")
            continue
        removed.append(str(path))
    return removed


def check_output_names(case_id: str, save_maps: bool) -> None:
    """Fail a case whose output file names the file system cannot hold (more than
    ``NAME_MAX`` bytes) before its pipeline runs, not after it: a folder name of 250
    characters is legal, ``<ID>.nii.gz`` then is not."""
    longest = f"{case_id}-anomaly-t2f.nii.gz" if save_maps else f"{case_id}.nii.gz"
    size = len(longest.encode())
    if size > NAME_MAX:
        raise CaseError(
            f"case {case_id}: its output file name {longest} would be {size} bytes long, "
            f"more than the {NAME_MAX} a file name may have; rename the case folder (and "
            "files) to a shorter case ID" + (", or run without --save-maps" if save_maps else "")
        )


def check_map_collisions(cases: list[Case], save_maps: bool) -> None:
    """With ``--save-maps``, case ``X``'s anomaly map ``X-anomaly-t2f.nii.gz`` is the label
    map of a case ``X-anomaly-t2f``: one would overwrite the other. Refused before
    anything runs (checked over all cases, so that shards cannot collide either)."""
    if not save_maps:
        return
    ids = {c.case_id.lower(): c for c in cases}
    for case in cases:
        for name in MAP_NAMES:
            other = ids.get(f"{case.case_id}-anomaly-{name}".lower())
            if other is not None:
                raise InputError(
                    f"case {other.case_id} ({other.folder}): its label map "
                    f"{other.case_id}.nii.gz is also the {name} anomaly map of case "
                    f"{case.case_id} ({case.folder}) under --save-maps; rename the case "
                    "folder (and files) of one, or run without --save-maps"
                )


def write_qc(case: Case, volumes: CaseVolumes, seg: Segmentation, output_dir: Path) -> None:
    """QC picture with the case's reference where it has one (``-seg``/``-ref``/...)."""
    reference = load_reference_labels(case, volumes)
    path = output_dir / "qc" / f"{case.case_id}.png"
    write_qc_png(path, case.case_id, volumes.arrays, seg.maps, seg.labels, reference)


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
    after: dict[str, Callable[[], object]] | None = None,
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
    bar = tqdm(
        total=len(STAGES) + int(qc_png),
        desc=case.case_id,
        # No bars in logs (containers, CI): they would be pages of carriage-return frames.
        disable=quiet or not sys.stderr.isatty(),
        leave=True,
        file=sys.stderr,
        bar_format="{desc}: {bar:20} {n_fmt}/{total_fmt} {postfix} [{elapsed}]",
    )
    timer = StageTimer(bar, after)
    try:
        check_output_names(case.case_id, save_maps)
        with timer.stage("read"):
            atol = segmenter.config.affine_atol
            volumes = read_case(case, atol) if reading is None else reading.result()
        if not qc_png:  # nothing after the normalisation needs the images
            timer.after["normalise"] = volumes.release_images
        result.warnings += volumes.warnings
        result.resampled = volumes.resampled
        result.modalities = list(volumes.present)
        seg = segmenter.segment(volumes, timer, normalising.result if normalising else None)
        with timer.stage("write"):
            out_path = write_outputs(volumes, seg, output_dir, save_maps)
        result.status = "ok"
        result.output = str(out_path)
        result.anomaly_score = round(seg.score, 4)
        result.abnormality = seg.abnormality
        result.voxels_per_label = voxels_per_label(seg.labels)
        result.refine = seg.refine
        result.normalise_left_out = seg.normalise_left_out
        result.warnings += seg.warnings
        if not seg.labels.any():
            result.warnings.append("no anomaly found: the label map is all zero")
        elif (flag := healthy_like(seg, segmenter.config.healthy_abnormality)) is not None:
            result.warnings.append(flag)
        peaks = segmenter.peak_thresholds(volumes.present)
        if segmenter.config.component_rule != "largest" and all(v is None for v in peaks.values()):
            result.warnings.append(
                f"--components {segmenter.config.component_rule}: these weights carry no "
                f"peak values for {'+'.join(volumes.present)}; kept the largest component only"
            )
        if qc_png:
            with timer.stage("qc"):
                try:
                    write_qc(case, volumes, seg, output_dir)
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


def note_removed(result: CaseResult, removed: list[str]) -> None:
    """Say in the case's warnings which files of an earlier run its failure removed."""
    if removed:
        result.warnings.append(
            "removed the output of an earlier run, which this run's failure makes out of "
            f"date: {', '.join(removed)}"
        )


def healthy_like(seg: Segmentation, limit: float) -> str | None:
    """A warning when the labels' whole tumour is no more abnormal than healthy brains are
    (t2f ``abnormality`` below ``limit``): the component rule labels something in every
    case, a tumour-free one too."""
    value = seg.abnormality.get("t2f")
    if value is None or value >= limit:
        return None
    return (
        f"t2f abnormality {value:.2f} is below {limit:g}: this case's residual is within "
        "the variation of healthy brains, so its labels may mark no tumour (docs/cli.md, "
        '"abnormality")'
    )


def read_case(case: Case, affine_atol: float) -> CaseVolumes:
    """The read stage: the case's images, checked, on the model's frame (another grid is
    resampled; its outputs go back to its own)."""
    volumes = load_case(case, affine_atol, allow_missing=True, skip_corrupt=True)
    return to_model_frame(volumes)


def fill_in_placeholder(case: Case, result: CaseResult, output_dir: Path) -> None:
    """An empty label map in place of a failed case; the case stays ``failed``."""
    try:
        path, on_brats_grid = write_placeholder(case, output_dir)
    except Exception as exc:  # never let the stand-in hide the case's own error
        result.warnings.append(f"no placeholder written: {type(exc).__name__}: {exc}")
        return
    result.placeholder = str(path)
    if on_brats_grid:
        result.warnings.append(
            f"placeholder {path} is on the BraTS grid (240x240x155, 1 mm): no input header "
            "of the case passed the checks reading makes"
        )


def save_report(report: RunReport, folder: Path) -> None:
    """Rewrite the report; when that fails (a full disk), say so on stderr, remove the
    previous file (it would claim fewer cases than were run: a stale report is worse than
    none) and keep the error in ``report_file_error``, which makes the exit code 3."""
    path = folder / report.file_name
    report.report_file_error = None
    try:
        report.write(folder)
        return
    except OSError as exc:
        report.report_file_error = f"cannot write the report {path}: {exc}"
    try:
        path.unlink(missing_ok=True)
        what = "the out-of-date report there was removed"
    except OSError as exc:
        what = f"the out-of-date report there could not be removed either ({exc})"
    print(f"brats-goat predict: ERROR: {report.report_file_error}; {what}", file=sys.stderr)


def interrupted_result(case: Case, exc: RunInterrupted) -> CaseResult:
    """The running (or next) case's result when the signal came outside ``predict_case``:
    before its first stage."""
    return CaseResult(
        case_id=case.case_id,
        input=str(case.folder),
        status="interrupted",
        error=f"case {case.case_id}: interrupted by {exc.name} during start",
    )


class ReadAhead:
    """Cases read and normalised on a helper thread ahead of the one being segmented
    (issue 18).

    Reading is mostly gzip and numpy, normalising numpy and scipy.ndimage: both leave the
    GIL, and fill a core that the 3D stages after the reconstruction leave idle. The next
    case is read once the current one's reconstruction has ended (during it, torch's two
    threads need both cores: a read beside them slowed it by more than the read took), and
    normalised once the last stage that needs both cores has ended: the reconstruction, or
    SAM's refinement where it runs (beside it, the normalisation also raised the peak
    memory). The first case is read while the segmenter is built (weights, the OpenVINO
    export) and normalised by the run itself. At most one extra case is in memory.
    """

    def __init__(self, cases: list[Case], affine_atol: float) -> None:
        self.cases, self.atol = cases, affine_atol
        self.pool = helper_pool(1, "brats-goat-read")
        self.reads: dict[int, Future[CaseVolumes]] = {}
        self.norms: dict[int, Future[Normalised]] = {}

    def start(self, index: int) -> None:
        """Start reading case ``index`` (0-based) unless it is started or there is none."""
        if index < len(self.cases) and index not in self.reads:
            self.reads[index] = self.pool.submit(read_case, self.cases[index], self.atol)

    def normalise(self, index: int, segmenter: Segmenter) -> None:
        """Normalise case ``index`` once it is read (the pool's one thread runs its jobs in
        order), unless it is not being read or is already normalised."""
        read = self.reads.get(index)
        if read is not None and index not in self.norms:
            self.norms[index] = self.pool.submit(lambda: segmenter.normalise(read.result()))

    def after_stages(self, index: int, segmenter: Segmenter) -> dict[str, Callable[[], object]]:
        """What to start for case ``index`` as the current case's stages end
        (``StageTimer``'s ``after``): its read, then its normalisation."""

        def read() -> None:
            self.start(index)

        def normalise() -> None:
            self.normalise(index, segmenter)

        if segmenter.refiner is None:
            return {"reconstruct": lambda: (read(), normalise())}
        return {"reconstruct": read, "refine": normalise}

    def take(self, index: int) -> tuple[Future[CaseVolumes], Future[Normalised] | None]:
        """Case ``index``'s read, started now if it was not, and its normalisation if it
        was started (None: the case is normalised when it runs); both go with the case."""
        self.start(index)
        return self.reads.pop(index), self.norms.pop(index, None)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


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


def _output_id(target: str) -> str | None:
    """The case ID of an output file name: ``<ID>.nii.gz``, ``<ID>-anomaly-<map>.nii.gz``,
    ``<ID>.png`` (QC); ``None`` for anything else."""
    match = re.fullmatch(r"(.+?)(?:-anomaly-[a-z0-9]+)?\.(?:nii\.gz|png)", target)
    return match.group(1) if match else None


def owned_by(case_ids: Iterable[str], report_name: str) -> Callable[[str], bool]:
    """Whether a temporary file's target (``find_temp_files``) is one this run writes: its
    cases' outputs and its report, named as they are or by ``temp_key``'s digest."""
    ids = set(case_ids)
    keys = {temp_key(p.name) for i in ids for p in case_output_files(i, Path("."))}
    return lambda target: target == report_name or _output_id(target) in ids or target in keys


def remove_stale_files(folders: Iterable[Path], owns: Callable[[str], bool] | None) -> list[str]:
    """Remove what earlier runs, killed while writing, left in ``folders``: temporary files
    (``brats_goat.io.write``) of the files ``owns`` accepts. With ``owns=None`` (the run
    holds the folders alone, so nothing in them belongs to a live run) every temporary
    file, write probe and unheld shard lock. Returns the paths removed."""
    stale: list[Path] = []
    for folder in folders:
        stale += [p for p, target in find_temp_files(folder) if owns is None or owns(target)]
        if owns is None and folder.is_dir():
            stale += [p for p in sorted(folder.iterdir()) if _PROBE.match(p.name)]
            stale += stale_shard_locks(folder)
    removed = []
    for path in stale:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(str(path))
    return removed


def clean_up_killed_runs(
    report: RunReport, cases: list[Case], report_dir: Path | None, exclusive: bool
) -> None:
    """``remove_stale_files`` on OUTPUT, OUTPUT/qc and the report folder, said on stderr and
    in the report. A run without the folders to itself (a shard; no locks) removes only
    the temporary files of its own outputs and report."""
    output_dir = Path(report.output)
    folders = [output_dir, output_dir / "qc"] + ([report_dir] if report_dir else [])
    owns = None if exclusive else owned_by((c.case_id for c in cases), report.file_name)
    removed = remove_stale_files(dict.fromkeys(p.resolve() for p in folders), owns)
    report.stale_files_removed = removed
    if removed:
        print(
            f"brats-goat predict: removed {len(removed)} file(s) left by an earlier run that "
            f"was killed while writing: {', '.join(removed)}",
            file=sys.stderr,
        )


def lock_run(
    stack: ExitStack, output_dir: Path, report_dir: Path | None, shard: Shard | None
) -> bool:
    """Hold OUTPUT (and the report folder) for this run; ``InputError`` when another run
    holds either. Returns whether the locks are real (not on a file system without them)."""
    try:
        locked = stack.enter_context(lock_folders(_out_folders(output_dir, report_dir), shard))
    except FolderBusy as exc:
        raise InputError(str(exc)) from exc
    if not locked:
        print(
            "brats-goat predict: WARNING: the file system of OUTPUT has no file locks; a "
            "second run into the same folder would not be detected",
            file=sys.stderr,
        )
    return locked


def new_report(
    segmenter: Segmenter,
    input_dir: Path,
    output_dir: Path,
    shard: Shard | None,
    cases_found: int,
    cases_to_run: int,
) -> RunReport:
    """The report of a run about to start (``state`` running): everything that decides its
    results (method, weights, device, every parameter) and how many cases it is to do."""
    return RunReport(
        input=str(input_dir),
        output=str(output_dir),
        method=segmenter.method,
        weights=segmenter.meta.get("path"),
        weights_sha256=segmenter.meta.get("sha256"),
        device=str(segmenter.device),
        precision=segmenter.precision,
        cpu_isa=segmenter.cpu_isa,
        refine=segmenter.refiner.name if segmenter.refiner is not None else "none",
        # The post-processing actually applied (for the MViT-AE: the checkpoint's).
        config={**to_dict(segmenter.config), "postprocess": to_dict(segmenter.postprocess)},
        shard=shard.to_dict(cases_found) if shard else None,
        cases_total=cases_to_run,
    )


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
    check_folders(input_dir, output_dir, own_report_dir)
    if qc_png:
        try:
            require_matplotlib()
        except RuntimeError as exc:
            raise InputError(str(exc)) from exc
    cases = find_cases(input_dir)
    check_map_collisions(cases, save_maps)
    label_maps = frozenset(f"{c.case_id}.nii.gz" for c in cases)  # every shard's too
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
        if own_report_dir is not None:
            # First write before any case: a shard with no cases (N > cases) still has one.
            save_report(report, own_report_dir)
        try:
            segment_cases(
                to_run,
                segmenter,
                report,
                output_dir,
                own_report_dir,
                placeholders=placeholders,
                quiet=quiet,
                ahead=ahead,
                notes=notes,
                save_maps=save_maps,
                qc_png=qc_png,
                label_maps=label_maps,
            )
        except RunInterrupted as exc:
            exc.report = report  # also for a signal that came after the last case
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return report
