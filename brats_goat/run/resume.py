"""``predict --continue``: a case whose label map an earlier run left in OUTPUT, valid, is
not segmented again (as nnU-Net's ``--continue_prediction``), so that a long run cut short
(a killed job, a full disk) resumes where it stopped.

Valid means what a finished case of ours leaves: a readable 3D uint8 NIfTI holding only
the labels 0-3, in the shape and affine of the case's input, that is no ``FAILED``
placeholder and is newer than each of the case's input files; with ``--save-maps`` and
``--qc-png`` its anomaly maps and QC picture exist too. Anything else (a placeholder, a
truncated file, another case's grid, an input changed since) is segmented again and says
why in its warnings. A skipped case stays in the report, ``ok`` with
``skipped`` saying why, so that nothing is silent and the exit code counts it as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from brats_goat.io.discover import Case
from brats_goat.run.placeholder import PLACEHOLDER_DESCRIP, geometry_source
from brats_goat.run.report import CaseResult


@dataclass(frozen=True)
class ResumeConfig:
    """What a label map of an earlier run must match to be kept."""

    #: Largest difference (mm) between its affine and the input's: NIfTI stores float32.
    affine_atol: float = 1e-3
    #: The labels a label map may hold (BraTS 2023: 1 NETC, 2 SNFH, 3 ET).
    labels: tuple[int, ...] = (0, 1, 2, 3)


def label_map_problem(
    case: Case, path: Path, config: ResumeConfig = ResumeConfig()
) -> tuple[str, dict[str, int]]:
    """Why ``path`` is no valid label map of ``case`` ("" when it is), and its voxels per
    label (1-3) when it is."""
    reference = geometry_source(case)
    if reference is None:
        return "no input header of the case to check it against", {}
    try:
        image = cast(nib.Nifti1Image, nib.load(str(path)))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # truncated, not NIfTI: segment the case again
        return f"it cannot be read ({type(exc).__name__}: {exc})", {}
    descrip = image.header["descrip"].item().decode(errors="replace").strip()
    if descrip == PLACEHOLDER_DESCRIP:
        return "it is the empty placeholder of a failed case", {}
    if image.get_data_dtype() != np.uint8 or data.dtype != np.uint8:
        return f"its voxels are {image.get_data_dtype()}, not uint8", {}
    if data.shape != tuple(reference.shape[:3]):
        return f"its shape {data.shape} is not the input's {tuple(reference.shape[:3])}", {}
    if not np.allclose(image.affine, reference.affine, atol=config.affine_atol):
        return "its affine is not the input's", {}
    counts = np.bincount(data.ravel(), minlength=256)
    others = [v for v in np.flatnonzero(counts) if v not in config.labels]
    if others:
        return f"it holds values other than the labels 0-3 ({others[:5]})", {}
    return "", {str(v): int(counts[v]) for v in config.labels if v}


def newer_input(case: Case, path: Path) -> str:
    """Why the label map ``path`` is older than an input of ``case`` ("" when it is not):
    a sequence replaced (or a link to it retargeted) since that run was not segmented into
    it (probe round 3, F5). The change time counts too: a file moved into place (``mv``)
    keeps its old modification time. Both the file and a link to it count; one that cannot
    be stat'ed is left to reading, which fails the case with its error."""
    try:
        made = path.stat().st_mtime_ns
    except OSError:
        return ""
    for file in case.files.values():
        try:
            stats = (file.stat(), file.lstat())
        except OSError:
            continue
        if max(max(s.st_mtime_ns, s.st_ctime_ns) for s in stats) > made:
            return f"its input {file} was changed (written, replaced or moved) after it"
    return ""


def missing_extras(
    case_id: str, output_dir: Path, maps: tuple[str, ...], qc_png: bool
) -> list[str]:
    """The anomaly maps (``maps``: those ``--save-maps`` writes) and QC picture this run is
    to write that an earlier run did not."""
    wanted = [output_dir / f"{case_id}-anomaly-{name}.nii.gz" for name in maps]
    wanted += [output_dir / "qc" / f"{case_id}.png"] if qc_png else []
    return [p.name for p in wanted if not p.is_file()]


def earlier_result(case: Case, output_dir: Path, maps: tuple[str, ...], qc_png: bool) -> CaseResult:
    """The case's result as a kept earlier output (``status`` ok, ``skipped`` set), or, when
    it must be segmented again, a result whose warnings say why (``status`` pending)."""
    path = output_dir / f"{case.case_id}.nii.gz"
    result = CaseResult(case_id=case.case_id, input=str(case.folder))
    if case.problems or not path.exists():
        return result  # no earlier output, or a case that fails whatever is there
    problem, counts = label_map_problem(case, path)
    problem = problem or newer_input(case, path)
    if not problem:
        missing = missing_extras(case.case_id, output_dir, maps, qc_png)
        problem = f"{', '.join(missing)} missing" if missing else ""
    if problem:
        result.warnings.append(
            f"--continue: segmented again: the earlier run's {path} is not kept: {problem}"
        )
        return result
    result.status, result.output, result.voxels_per_label = "ok", str(path), counts
    result.skipped = f"--continue: {path} of an earlier run is valid; not segmented again"
    return result


def split_done(
    cases: list[Case], output_dir: Path, maps: tuple[str, ...], qc_png: bool
) -> tuple[list[CaseResult], list[Case], dict[str, list[str]]]:
    """``cases`` as (results of the kept ones, the ones to run, warnings per case to run);
    ``maps``: the anomaly maps the run writes per case (none without ``--save-maps``)."""
    kept: list[CaseResult] = []
    to_run: list[Case] = []
    notes: dict[str, list[str]] = {}
    for case in cases:
        result = earlier_result(case, output_dir, maps, qc_png)
        if result.status == "ok":
            kept.append(result)
        else:
            to_run.append(case)
            if result.warnings:
                notes[case.case_id] = result.warnings
    return kept, to_run, notes
