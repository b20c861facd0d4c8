"""Score a folder of predictions against BraTS references (``brats-goat evaluate``).

Pairs ``PRED/<ID>.nii.gz`` with ``REF/<ID>-seg.nii.gz`` (or BraTS 2021's ``_seg``),
``REF/<ID>-ref.nii.gz`` or ``REF/<ID>.nii.gz`` (each also ``.nii``), directly in REF or in
BraTS case folders ``REF/<ID>/``. A reference without a
prediction is scored as an empty prediction (as a challenge would) and flagged, so a silently
missing output cannot inflate the mean; a geometry mismatch fails that case loudly.
Finding the files is ``pairing``, reading a label map ``label_maps``, the result and its
files ``result``; this module runs them in order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brats_goat.evaluation.label_maps import load_labels
from brats_goat.evaluation.metrics import (
    DEFAULT_RULES,
    Cohort,
    RegionScore,
    ScoringRules,
    get_cohort,
    score_case,
)
from brats_goat.evaluation.pairing import (
    DEFAULT_LAYOUT,
    FolderLayout,
    find_predictions,
    find_references,
)
from brats_goat.evaluation.result import EvaluationResult, write_outputs


class EvaluationUsageError(ValueError):
    """The folders cannot be evaluated at all (missing, or nothing to pair)."""


class EvaluationOutputError(OSError):
    """``metrics.csv``/``metrics.json`` could not be written after the cases were scored
    (a full disk); the message names the file."""


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
    ref, ref_affine, spacing = load_labels(ref_path, legacy_et4)
    if pred_path is None:
        pred = np.zeros_like(ref)
    else:
        pred, pred_affine, _ = load_labels(pred_path, legacy_et4)
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
