"""The scores of a folder: per-case results, region means, the table and the metrics files."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from brats_goat.evaluation.metrics import (
    DEFAULT_RULES,
    Cohort,
    LesionScore,
    RegionScore,
    ScoringRules,
)
from brats_goat.evaluation.pairing import DEFAULT_LAYOUT, FolderLayout

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
        rows: list[tuple[str, ...]] = [head]
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
