"""The folder runner: ``predict`` segments every case under INPUT into OUTPUT.

Per-case isolation (one failure never stops the others), progress bars, the run report
after every case, and outputs written atomically in the input's geometry. The segmentation
itself is ``brats_goat.segmenter``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brats_goat.io.discover import Case, discover_cases
from brats_goat.io.read import CaseError, CaseVolumes, load_case, load_reference_labels
from brats_goat.io.write import like_reference, write_nifti_atomic
from brats_goat.run.placeholder import write_placeholder
from brats_goat.run.qc import require_matplotlib, write_qc_png
from brats_goat.run.report import CaseResult, RunReport
from brats_goat.run.shard import Shard, select_shard
from brats_goat.segmenter import (
    STAGES,
    PipelineConfig,
    Segmentation,
    Segmenter,
    make_segmenter,
)
from brats_goat.serialise import to_dict
from brats_goat.stages.labels import voxels_per_label
from brats_goat.timing import StageTimer


class InputError(Exception):
    """A problem with the run as a whole (usage), as opposed to one case."""


def check_folders(input_dir: Path, output_dir: Path, report_dir: Path | None = None) -> None:
    """Usage errors that make the whole run pointless; raised before any case is read."""
    if not input_dir.is_dir():
        raise InputError(f"INPUT {input_dir} is not a folder")
    inp = input_dir.resolve()
    for what, folder in (("OUTPUT", output_dir), ("the report folder", report_dir)):
        if folder is None:
            continue
        out = folder.resolve()
        if out == inp or inp in out.parents:
            raise InputError(
                f"{what} {folder} is INPUT or inside it: outputs would mix with the inputs "
                "(and inputs are never modified); choose a separate folder"
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".brats-goat-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise InputError(f"{what} {folder} is not writable: {exc}") from exc


def write_outputs(
    volumes: CaseVolumes, seg: Segmentation, output_dir: Path, save_maps: bool
) -> Path:
    """Labels (and optionally float32 maps) in the input's storage order and header geometry."""
    labels = volumes.to_stored(seg.labels)
    out_path = write_nifti_atomic(
        like_reference(labels, volumes.reference, np.uint8),
        output_dir / f"{volumes.case_id}.nii.gz",
    )
    if save_maps:
        for name, anomaly in seg.maps.items():
            image = like_reference(volumes.to_stored(anomaly), volumes.reference, np.float32)
            write_nifti_atomic(image, output_dir / f"{volumes.case_id}-anomaly-{name}.nii.gz")
    return out_path


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
) -> CaseResult:
    """Run one case; any failure becomes an error in its result, never an exception."""
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
    timer = StageTimer(bar)
    try:
        with timer.stage("read"):
            volumes = load_case(case, segmenter.config.affine_atol, allow_missing=True)
        result.warnings += volumes.warnings
        result.modalities = list(volumes.present)
        seg = segmenter.segment(volumes, timer)
        with timer.stage("write"):
            out_path = write_outputs(volumes, seg, output_dir, save_maps)
        result.status = "ok"
        result.output = str(out_path)
        result.anomaly_score = round(seg.score, 4)
        result.voxels_per_label = voxels_per_label(seg.labels)
        result.refine = seg.refine
        result.normalise_left_out = seg.normalise_left_out
        if not seg.labels.any():
            result.warnings.append("no anomaly found: the label map is all zero")
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
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a bug or resource error in one case must not stop the others
        result.status = "failed"
        result.error = f"case {case.case_id}: unexpected {type(exc).__name__}: {exc}"
        result.warnings.append(traceback.format_exc(limit=5))
    finally:
        bar.close()
    result.timings_s = timer.timings
    return result


def fill_in_placeholder(case: Case, result: CaseResult, output_dir: Path) -> None:
    """An empty label map in place of a failed case; the case stays ``failed``."""
    try:
        path = write_placeholder(case, output_dir)
    except Exception as exc:  # never let the stand-in hide the case's own error
        result.warnings.append(f"no placeholder written: {type(exc).__name__}: {exc}")
        return
    if path is None:
        result.warnings.append("no placeholder written: no input header could be read")
    else:
        result.placeholder = str(path)


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
) -> RunReport:
    """Segment every case under ``input_dir`` into ``output_dir``; returns the run report.

    With ``shard`` only that part of the sorted cases is run (``brats_goat.run.shard``) and the
    report is ``report-shard-K-of-N.json``. The report file goes to ``report_dir`` (default
    ``output_dir``), or nowhere with ``write_report=False``. ``placeholders``: a failed case
    gets an empty label map in ``output_dir`` (``brats_goat.run.placeholder``) and stays
    failed in the report. Raises ``InputError`` for problems with the run itself (no cases,
    bad output or report folder).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    report_dir = Path(report_dir) if report_dir is not None else None
    check_folders(input_dir, output_dir, report_dir if write_report else None)
    report_dir = report_dir or output_dir
    if qc_png:
        try:
            require_matplotlib()
        except RuntimeError as exc:
            raise InputError(str(exc)) from exc
    cases = discover_cases(input_dir)
    if not cases:
        raise InputError(
            f"no cases found in {input_dir}: expected case folders holding files like "
            "<ID>-t1n.nii.gz, <ID>-t1c.nii.gz, <ID>-t2w.nii.gz, <ID>-t2f.nii.gz"
        )
    cases_total = len(cases)
    cases = select_shard(cases, shard)
    segmenter = segmenter or make_segmenter(method, weights, config)
    report = RunReport(
        input=str(input_dir),
        output=str(output_dir),
        method=segmenter.method,
        weights=segmenter.meta.get("path"),
        weights_sha256=segmenter.meta.get("sha256"),
        device=str(segmenter.device),
        refine=segmenter.refiner.name if segmenter.refiner is not None else "none",
        # The post-processing actually applied (for the MViT-AE: the checkpoint's).
        config={**to_dict(segmenter.config), "postprocess": to_dict(segmenter.postprocess)},
        shard=shard.to_dict(cases_total) if shard else None,
    )
    if write_report:
        report.write(report_dir)  # a shard with no cases (N > cases) still leaves its report
    for i, case in enumerate(cases, 1):
        if not quiet:
            tqdm.write(f"[{i}/{len(cases)}] {case.case_id}", file=sys.stderr)
        result = predict_case(
            case, segmenter, output_dir, save_maps=save_maps, qc_png=qc_png, quiet=quiet
        )
        if placeholders and result.status != "ok":
            fill_in_placeholder(case, result, output_dir)
        report.cases.append(result)
        if write_report:
            report.write(report_dir)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return report
