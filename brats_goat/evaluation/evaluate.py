"""Score a folder of predictions against BraTS references (``brats-goat evaluate``).

Pairs ``PRED/<ID>.nii.gz`` with ``REF/<ID>-seg.nii.gz`` (or BraTS 2021's ``_seg``),
``REF/<ID>-ref.nii.gz`` or ``REF/<ID>.nii.gz`` (each also ``.nii``), directly in REF or in
BraTS case folders ``REF/<ID>/``. A reference without a
prediction is scored as an empty prediction (as a challenge would) and flagged, so a silently
missing output cannot inflate the mean; a geometry mismatch fails that case loudly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import zlib
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from brats_goat.evaluation.metrics import (
    DEFAULT_RULES,
    Cohort,
    LesionScore,
    RegionScore,
    ScoringRules,
    get_cohort,
    score_case,
)

CSV_COLUMNS = (
    "case",
    "region",
    "lesionwise_dice",
    "lesionwise_hd95",
    "dice",
    "hd95",
    "n_ref_lesions",
    "n_fp",
    "lesions_detected",
    "case_detected",
    "prediction_missing",
)


@dataclass(frozen=True)
class FolderLayout:
    """How files are recognised; tolerances of the geometry check."""

    extension: str = ".nii.gz"
    #: Extensions of references, in order of preference: what ``predict`` reads, reads here.
    reference_extensions: tuple[str, ...] = (".nii.gz", ".nii")
    #: Reference names tried for case ``<ID>``, in order of preference (``_seg``: BraTS
    #: 2021 and earlier).
    reference_suffixes: tuple[str, ...] = ("-seg", "_seg", "-ref", "_ref", "")
    #: Files in the prediction folder that are not label maps: hidden ones, and the anomaly
    #: maps of ``predict --save-maps`` (unless a reference has that ID: a case may be named
    #: ``X-anomaly-t2f``).
    ignore_prediction: str = r"^\."
    anomaly_map: str = r"-anomaly-"
    #: A plain ``<ID>.nii.gz`` directly in REF is not a reference if it is an MRI channel.
    image_suffix: str = r"[-_](t1n|t1c|t2w|t2f|t1|t1ce|t2|flair)$"
    #: Affines may differ by float32 header rounding.
    affine_atol: float = 1e-3
    csv_name: str = "metrics.csv"
    json_name: str = "metrics.json"


DEFAULT_LAYOUT = FolderLayout()


class EvaluationUsageError(ValueError):
    """The folders cannot be evaluated at all (missing, or nothing to pair)."""


class EvaluationOutputError(OSError):
    """``metrics.csv``/``metrics.json`` could not be written after the cases were scored
    (a full disk); the message names the file."""


class LabelError(ValueError):
    """A label map holds values that are not BraTS 2023 labels; that case is not scored."""


#: Labels of a BraTS 2023 label map: background, NETC, SNFH, ET.
VALID_LABELS: tuple[int, ...] = (0, 1, 2, 3)
#: ET before BraTS 2023 (2017-2021 releases); ``legacy_et4`` reads it as 3.
LEGACY_ET = 4
#: A float label map may carry header rounding (2.0000001); farther from a whole number it
#: is not a label map (a probability map, a resampled map) and is refused.
LABEL_ROUNDING_TOLERANCE = 1e-3


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@dataclass
class EvaluationResult:
    """Per-case scores, the bookkeeping of what could not be paired, and region means."""

    cohort: Cohort
    cases: dict[str, dict[str, RegionScore]]
    #: Cases with a reference but no prediction (scored as an empty prediction).
    missing: list[str] = field(default_factory=list)
    #: Predictions without a reference (not scored).
    unpaired: list[str] = field(default_factory=list)
    #: Cases that could not be scored, with the reason.
    failed: dict[str, str] = field(default_factory=dict)
    regions: tuple[str, ...] = DEFAULT_RULES.region_names
    csv_path: Path | None = None
    json_path: Path | None = None
    #: Label 4 (legacy ET) was read as 3 (``--legacy-et4``).
    legacy_et4: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    def means(self) -> dict[str, dict[str, float]]:
        """Mean per region over scored cases; lesion detection pooled over all lesions."""
        out: dict[str, dict[str, float]] = {}
        for region in self.regions:
            scores = [case[region] for case in self.cases.values()]
            n_ref = sum(s.n_ref_lesions for s in scores)
            out[region] = {
                "lesionwise_dice": _mean([s.lesionwise_dice for s in scores]),
                "lesionwise_hd95": _mean([s.lesionwise_hd95 for s in scores]),
                "dice": _mean([s.dice for s in scores]),
                "hd95": _mean([s.hd95 for s in scores]),
                "lesion_detection_rate": (
                    sum(s.lesions_detected for s in scores) / n_ref if n_ref else math.nan
                ),
                "case_detection_rate": _mean([float(s.case_detected) for s in scores]),
                "n_fp": _mean([float(s.n_fp) for s in scores]),
                "n_cases": float(len(scores)),
            }
        return out

    def table(self) -> str:
        """Mean per region as an aligned text table, plus what was missing or failed."""
        head = ("region", "LW-Dice", "LW-HD95", "Dice", "HD95", "lesion det", "case det", "FP/case")
        keys = (
            "lesionwise_dice",
            "lesionwise_hd95",
            "dice",
            "hd95",
            "lesion_detection_rate",
            "case_detection_rate",
            "n_fp",
        )
        rows = [head]
        for region, values in self.means().items():
            rows.append((region, *(f"{values[k]:.4f}" for k in keys)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        n = len(self.cases)
        lines.append(f"{n} case(s) scored, cohort {self.cohort.name}")
        if self.legacy_et4:
            lines.append("label 4 (legacy ET) read as ET, 3 (--legacy-et4)")
        if self.missing:
            lines.append(
                f"{len(self.missing)} reference(s) without prediction, scored as empty: "
                + ", ".join(self.missing)
            )
        if self.unpaired:
            lines.append(
                f"{len(self.unpaired)} prediction(s) without reference, not scored: "
                + ", ".join(self.unpaired)
            )
        for case, reason in self.failed.items():
            lines.append(f"FAILED {case}: {reason}")
        return "\n".join(lines)


def _strip(name: str, extension: str) -> str | None:
    return name[: -len(extension)] if name.endswith(extension) else None


def find_predictions(
    pred_dir: Path, layout: FolderLayout = DEFAULT_LAYOUT, references: Collection[str] = ()
) -> dict[str, Path]:
    """``<ID>.nii.gz`` label maps directly in the prediction folder; a name with
    ``-anomaly-`` in it is an anomaly map, unless it is the ID of one of ``references``."""
    ignore, anomaly = re.compile(layout.ignore_prediction), re.compile(layout.anomaly_map)
    out = {}
    for path in sorted(pred_dir.iterdir()):
        case = _strip(path.name, layout.extension)
        if not case or not path.is_file() or ignore.search(path.name):
            continue
        if anomaly.search(path.name) and case not in references:
            continue
        out[case] = path
    return out


def find_references(ref_dir: Path, layout: FolderLayout = DEFAULT_LAYOUT) -> dict[str, Path]:
    """References directly in REF or in case folders, preferring ``-seg`` over ``-ref``/plain
    and ``.nii.gz`` over ``.nii``."""
    image = re.compile(layout.image_suffix)
    found: dict[str, dict[tuple[int, int], Path]] = {}  # case -> (suffix, extension) -> path

    def add(case: str, suffix: str, ext: str, path: Path) -> None:
        rank = (layout.reference_suffixes.index(suffix), layout.reference_extensions.index(ext))
        found.setdefault(case, {}).setdefault(rank, path)

    entries = sorted(ref_dir.iterdir())
    for path in entries:  # flat files first: they win over case folders
        named = _reference_name(path.name, layout)
        if named is None or not path.is_file():
            continue
        stem, ext = named
        for suffix in layout.reference_suffixes:
            if suffix and stem.endswith(suffix):
                add(stem[: -len(suffix)], suffix, ext, path)
                break
        else:
            if "" in layout.reference_suffixes and not image.search(stem):
                add(stem, "", ext, path)
    for folder in entries:
        if not folder.is_dir():
            continue
        for suffix in layout.reference_suffixes:
            for ext in layout.reference_extensions:
                path = folder / f"{folder.name}{suffix}{ext}"
                if path.is_file():
                    add(folder.name, suffix, ext, path)
    return {case: by[min(by)] for case, by in sorted(found.items())}


def _reference_name(name: str, layout: FolderLayout) -> tuple[str, str] | None:
    """``(stem, extension)`` of a file named like a reference, else ``None``."""
    for ext in layout.reference_extensions:
        stem = _strip(name, ext)
        if stem:
            return stem, ext
    return None


def _load_labels(
    path: Path, legacy_et4: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Integer labels, affine and voxel spacing (mm) of a label map."""
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, zlib.error, OSError, ValueError) as exc:
        # EOFError of a truncated gzip names neither the file nor what it means
        raise ValueError(
            f"{path}: not a readable NIfTI label map (truncated or corrupt: {exc})"
        ) from exc
    while data.ndim > 3 and data.shape[-1] == 1:  # (X, Y, Z, 1): one volume, as predict reads
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path.name}: expected a 3-D label map, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        data = whole_numbers(data, path)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
    # Checked before the cast, which would wrap a value such as 65539 round to a label.
    labels = check_labels(data, path, legacy_et4).astype(np.int16, copy=False)
    return labels, np.asarray(img.affine), spacing


def whole_numbers(data: np.ndarray, path: Path) -> np.ndarray:
    """A float label map rounded to whole numbers; refused when it is not one (NaN, or
    values such as probabilities that rounding would silently turn into labels)."""
    rounded = np.rint(data)
    off = ~(np.abs(data - rounded) <= LABEL_ROUNDING_TOLERANCE)  # NaN counts as off
    if off.any():
        examples = ", ".join(f"{v:g}" for v in np.unique(data[off])[:5])
        raise LabelError(
            f"{path} holds values that are not whole numbers ({examples}, in "
            f"{int(off.sum())} voxels): a label map holds the labels 0, 1, 2, 3"
        )
    return rounded


def check_labels(data: np.ndarray, path: Path, legacy_et4: bool = False) -> np.ndarray:
    """``data`` if it holds only BraTS 2023 labels; with ``legacy_et4`` label 4 becomes 3.

    Anything else is a ``LabelError`` naming the file and the values: scoring a legacy map
    as it is would give ET a Dice of 0 without a word.
    """
    if data.min() >= min(VALID_LABELS) and data.max() <= max(VALID_LABELS):
        return data  # the usual case, without a full np.unique
    if legacy_et4:
        data = np.where(data == LEGACY_ET, VALID_LABELS[-1], data)
    values = np.unique(data)
    bad = values[~np.isin(values, VALID_LABELS)]
    if bad.size:
        hint = (
            " (4 is ET in BraTS releases before 2023: pass --legacy-et4 to read it as 3)"
            if LEGACY_ET in bad
            else ""
        )
        raise LabelError(
            f"{path} holds labels {', '.join(map(str, bad[:10]))} outside 0, 1, 2, 3{hint}"
        )
    return data


def score_pair(
    pred_path: Path | None,
    ref_path: Path,
    cohort: Cohort | str = "gli",
    rules: ScoringRules = DEFAULT_RULES,
    layout: FolderLayout = DEFAULT_LAYOUT,
    legacy_et4: bool = False,
) -> dict[str, RegionScore]:
    """Score one file pair (``pred_path=None``: an empty prediction), checking geometry and
    labels (``legacy_et4``: label 4 in either file is read as ET, 3)."""
    ref, ref_affine, spacing = _load_labels(ref_path, legacy_et4)
    if pred_path is None:
        pred = np.zeros_like(ref)
    else:
        pred, pred_affine, _ = _load_labels(pred_path, legacy_et4)
        if pred.shape != ref.shape:
            raise ValueError(
                f"shape mismatch: prediction {pred_path.name} {pred.shape} vs reference "
                f"{ref_path.name} {ref.shape}"
            )
        if not np.allclose(pred_affine, ref_affine, atol=layout.affine_atol):
            raise ValueError(
                f"affine mismatch between prediction {pred_path.name} and reference "
                f"{ref_path.name} (max difference "
                f"{np.abs(pred_affine - ref_affine).max():.4g}); resample or copy the header"
            )
    return score_case(pred, ref, cohort, spacing, rules)


def _finite(value: object) -> object:
    """NaN -> null: JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _lesion_json(lesion: LesionScore) -> dict:
    return {k: _finite(v) for k, v in asdict(lesion).items()}


def write_outputs(
    result: EvaluationResult,
    output_dir: Path,
    rules: ScoringRules = DEFAULT_RULES,
    layout: FolderLayout = DEFAULT_LAYOUT,
) -> None:
    """``metrics.csv`` (case x region) and ``metrics.json`` (per case + means)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    missing = set(result.missing)
    csv_path = output_dir / layout.csv_name
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for case, regions in result.cases.items():
            for score in regions.values():
                writer.writerow(
                    {"case": case, **score.as_row(), "prediction_missing": case in missing}
                )
    payload = {
        "cohort": {
            "name": result.cohort.name,
            "dilation": result.cohort.dilation,
            "min_lesion_voxels": result.cohort.min_lesion_voxels,
        },
        "hd95_penalty": rules.hd95_penalty,
        "legacy_et4": result.legacy_et4,
        "mean": {
            region: {k: _finite(v) for k, v in values.items()}
            for region, values in result.means().items()
        },
        "cases": {
            case: {
                "prediction_missing": case in missing,
                "regions": {
                    name: {k: v for k, v in s.as_row().items() if k != "region"}
                    | {"lesions": [_lesion_json(les) for les in s.lesions]}
                    for name, s in regions.items()
                },
            }
            for case, regions in result.cases.items()
        },
        "missing": result.missing,
        "unpaired": result.unpaired,
        "failed": result.failed,
    }
    json_path = output_dir / layout.json_name
    json_path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    result.csv_path, result.json_path = csv_path, json_path


def evaluate_folder(
    pred_dir: Path | str,
    ref_dir: Path | str,
    cohort: Cohort | str = "gli",
    output_dir: Path | str | None = None,
    rules: ScoringRules = DEFAULT_RULES,
    layout: FolderLayout = DEFAULT_LAYOUT,
    cases: Sequence[str] | None = None,
    legacy_et4: bool = False,
) -> EvaluationResult:
    """Score every reference case; write ``metrics.csv``/``metrics.json`` to ``output_dir``.

    ``output_dir`` defaults to ``pred_dir``; ``cases`` restricts scoring to those IDs.
    A label map with values outside 0-3 fails its case (``LabelError``); ``legacy_et4``
    reads label 4 (ET before BraTS 2023) as 3 instead.
    Raises EvaluationUsageError when a folder is missing or no prediction pairs with a reference.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    for name, folder in (("prediction", pred_dir), ("reference", ref_dir)):
        if not folder.is_dir():
            raise EvaluationUsageError(f"{name} folder not found: {folder}")
    cohort = get_cohort(cohort)
    references = find_references(ref_dir, layout)
    predictions = find_predictions(pred_dir, layout, references)
    if cases is not None:
        wanted = set(cases)
        references = {k: v for k, v in references.items() if k in wanted}
        predictions = {k: v for k, v in predictions.items() if k in wanted}
    if not references:
        raise EvaluationUsageError(
            f"no reference label maps in {ref_dir} (expected <ID>-seg.nii.gz or <ID>_seg.nii.gz, "
            "<ID>-ref.nii.gz or <ID>.nii.gz, also .nii, directly or in <ID>/ case folders)"
        )
    if not set(predictions) & set(references):
        raise EvaluationUsageError(
            f"no prediction in {pred_dir} matches a reference in {ref_dir} "
            f"({len(predictions)} prediction(s), {len(references)} reference(s); "
            "predictions must be named <ID>.nii.gz)"
        )
    result = EvaluationResult(
        cohort=cohort,
        cases={},
        missing=sorted(set(references) - set(predictions)),
        unpaired=sorted(set(predictions) - set(references)),
        regions=rules.region_names,
        legacy_et4=legacy_et4,
    )
    out = Path(output_dir) if output_dir is not None else pred_dir
    check_output_folder(out, layout, default=output_dir is None)
    for case, ref_path in references.items():
        try:
            result.cases[case] = score_pair(
                predictions.get(case), ref_path, cohort, rules, layout, legacy_et4
            )
        except Exception as exc:  # one unreadable case must not hide the others' scores
            result.failed[case] = f"{type(exc).__name__}: {exc}"
    try:
        write_outputs(result, out, rules, layout)
    except OSError as exc:
        raise EvaluationOutputError(f"cannot write the metrics into {out}: {exc}") from exc
    return result


def check_output_folder(out: Path, layout: FolderLayout, default: bool) -> None:
    """Refuse, before any case is scored, an output folder the metrics cannot be written to:
    one that cannot be created (``-o /proc/x``, a path under a file), is not writable (a
    read-only PRED_DIR, the default) or holds a folder named like a metrics file."""
    where = "PRED_DIR, the default output folder," if default else "the output folder"
    fix = "give -o a folder you can write" if default else "give -o another folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationUsageError(
            f"cannot create {where} {out}: {exc.strerror or exc}; {fix}"
        ) from exc
    for name in (layout.csv_name, layout.json_name):
        path = out / name
        if path.exists() and not path.is_file():
            raise EvaluationUsageError(
                f"{path} exists and is not a file (a folder?): the metrics are written "
                f"there; remove it, or {fix}"
            )
    probe = out / f".brats-goat-write-test.{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EvaluationUsageError(
            f"cannot write in {where} {out}: {exc.strerror or exc}; {fix}"
        ) from exc
