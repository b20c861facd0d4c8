"""A case's files in OUTPUT: their names, checked before the case runs; the label map (and
anomaly maps, QC picture) written atomically on the input's grid; what an earlier run wrote
for a case that now fails, removed; an empty placeholder in place of a failed case."""

from __future__ import annotations

import sys
from pathlib import Path

from brats_goat.evaluation.pairing import find_predictions
from brats_goat.io.discover import Case
from brats_goat.io.read import CaseError, load_reference_labels
from brats_goat.io.write import NAME_MAX, write_nifti_atomic
from brats_goat.run.folders import InputError
from brats_goat.run.placeholder import write_placeholder
from brats_goat.run.qc import write_qc_png
from brats_goat.run.report import CaseResult
from brats_goat.run.segment_case import SegmentedCase

#: The anomaly maps ``--save-maps`` writes per case (``<ID>-anomaly-<name>.nii.gz``).
MAP_NAMES: tuple[str, ...] = ("t1c", "t2f")
#: How many names of other cases' label maps the report lists (it gives the count too).
LISTED_OTHER_MAPS = 10


def write_outputs(done: SegmentedCase, output_dir: Path, save_maps: bool) -> Path:
    """Labels (and optionally float32 maps) in the input's storage order and header geometry.

    The label map is written last, so that its presence means the case is complete. An
    ``OSError`` (a full disk, a quota, a read-only mount) fails the case with the file and
    the cause, and removes what the case had written: a failed case leaves no files.
    """
    written: list[Path] = []
    target = output_dir / f"{done.case_id}.nii.gz"
    try:
        if save_maps:
            for name in done.segmentation.maps:
                target = output_dir / f"{done.case_id}-anomaly-{name}.nii.gz"
                written.append(write_nifti_atomic(done.map_image(name), target))
        target = output_dir / f"{done.case_id}.nii.gz"
        return write_nifti_atomic(done.label_image(), target)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise CaseError(f"case {done.case_id}: cannot write {target}: {exc}") from exc


def write_qc(case: Case, done: SegmentedCase, output_dir: Path) -> None:
    """QC picture with the case's reference where it has one (``-seg``/``-ref``/...)."""
    volumes, seg = done.volumes, done.segmentation
    reference = load_reference_labels(case, volumes)
    path = output_dir / "qc" / f"{case.case_id}.png"
    write_qc_png(path, case.case_id, volumes.arrays, seg.maps, seg.labels, reference)


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


def note_removed(result: CaseResult, removed: list[str]) -> None:
    """Say in the case's warnings which files of an earlier run its failure removed."""
    if removed:
        result.warnings.append(
            "removed the output of an earlier run, which this run's failure makes out of "
            f"date: {', '.join(removed)}"
        )


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


def other_label_maps(output_dir: Path, case_ids: set[str]) -> list[str]:
    """Names of the label maps in ``output_dir`` (as ``evaluate`` finds them) of no case of
    INPUT: a case removed from INPUT since an earlier run left its map, which ``evaluate``
    would score with this run's (probe round 3, F7). ``case_ids``: every case of INPUT,
    other shards' too. They are the user's to remove: never deleted here."""
    if not output_dir.is_dir():
        return []
    try:
        found = find_predictions(output_dir)
    except OSError:
        return []
    return [path.name for case_id, path in found.items() if case_id not in case_ids]


def note_other_label_maps(output_dir: Path, case_ids: set[str]) -> dict[str, object] | None:
    """The report's ``other_label_maps`` (count and the first names), said on stderr in
    one line; None when OUTPUT holds none."""
    names = other_label_maps(output_dir, case_ids)
    if not names:
        return None
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    print(
        f"brats-goat predict: WARNING: OUTPUT {output_dir} holds label maps of {len(names)} "
        f"case(s) not in this run's INPUT ({shown}): they were not made by this run, and "
        "evaluate scores every label map in the folder; remove them before scoring",
        file=sys.stderr,
    )
    return {"count": len(names), "first": names[:LISTED_OTHER_MAPS]}
