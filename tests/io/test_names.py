"""File names that read as more than one thing (probe round 3, F6 and F8): the longest
known suffix wins (``P1_T2_FLAIR`` is P1's t2f, not FLAIR of a case ``P1_T2``), BIDS
names are read, and a case that lacks a sequence names the NIfTI files it did not read."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.io.discover import discover_cases
from brats_goat.io.names import split_suffix
from tests.conftest import write_case

#: BraTS 2015 / TCIA style names, and BIDS names, of the four sequences.
TCIA = {"t1n": "T1", "t1c": "T1GD", "t2w": "T2", "t2f": "T2_FLAIR"}
BIDS = {"t1n": "T1w", "t1c": "ce-gd_T1w", "t2w": "T2w", "t2f": "FLAIR"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("P1_T2_FLAIR.nii.gz", ("P1", "t2_flair")),
        ("P1-t2-flair.nii", ("P1", "t2_flair")),
        ("P1_T1_GD.nii.gz", ("P1", "t1_gd")),
        ("P1_T1_ce.nii.gz", ("P1", "t1_ce")),
        ("P1_T1GD.nii.gz", ("P1", "t1gd")),
        ("P1_T2.nii.gz", ("P1", "t2")),
        ("sub-01_T1w.nii.gz", ("sub-01", "t1w")),
        ("sub-01_ce-gd_T1w.nii.gz", ("sub-01", "ce_t1w")),
        ("sub-01_ses-2_ce-gadolinium_run-1_T1w.nii.gz", ("sub-01_ses-2_run-1", "ce_t1w")),
        ("T2_FLAIR.nii.gz", ("T2", "flair")),
    ],
)
def test_the_longest_known_suffix_is_read_first(name: str, expected: tuple[str, str]) -> None:
    assert split_suffix(name) == expected


@pytest.mark.parametrize("names", [TCIA, BIDS], ids=["tcia", "bids"])
@pytest.mark.parametrize("layout", ["flat", "case folder"])
def test_four_sequences_of_one_case_are_one_case(
    tmp_path: Path, layout: str, names: dict[str, str]
) -> None:
    """F6: P1_T1, P1_T1GD, P1_T2, P1_T2_FLAIR flat in INPUT gave cases P1 (no t2f) and
    P1_T2 (t2f only); in a case folder they were refused as two cases' files. F8: the BIDS
    T1w and ce-gd_T1w were passed over (the case ran from t2w and t2f)."""
    ids = ("P1", "P2") if layout == "flat" else ("P1",)
    for case_id in ids:
        write_case(tmp_path / "in", case_id, names=names, sep="_")
    inp = tmp_path / "in" / "P1"
    if layout == "flat":  # two cases' files side by side in INPUT
        for path in [*inp.iterdir(), *(tmp_path / "in" / "P2").iterdir()]:
            path.rename(tmp_path / "in" / path.name)
        inp = tmp_path / "in"
        for case_id in ids:
            (inp / case_id).rmdir()
    cases = discover_cases(inp)
    assert [c.case_id for c in cases] == list(ids)
    for case in cases:
        assert {m: p.name for m, p in case.files.items()} == {
            m: f"{case.case_id}_{n}.nii.gz" for m, n in names.items()
        }
        assert not case.problems and not case.warnings


@pytest.mark.parametrize("layout", ["flat", "case folder"])
def test_a_case_id_ending_like_a_sequence_keeps_its_flair(tmp_path: Path, layout: str) -> None:
    """The other reading of P1_T2_FLAIR: beside P1_T2_t1, P1_T2_t2, ... it is case P1_T2's
    FLAIR (the prefix the other files share), not the t2f of a case P1."""
    legacy = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "FLAIR"}
    folder = write_case(tmp_path / "in", "P1_T2", names=legacy, sep="_")
    inp = tmp_path / "in" if layout == "flat" else folder
    (case,) = discover_cases(inp)
    assert case.case_id == "P1_T2" and sorted(case.files) == ["t1c", "t1n", "t2f", "t2w"]
    assert not case.problems and not case.warnings


def test_bids_anat_folders_are_cases_named_after_their_files(tmp_path: Path) -> None:
    """BIDS keeps every subject's images in sub-<label>/anat/: the case ID is the files'
    prefix, not ``anat`` (which would make every subject a duplicate of the others)."""
    for subject in ("sub-01", "sub-02"):
        write_case(tmp_path / "in" / subject, "anat", skip=("t1n", "t1c", "t2w", "t2f"))
        for path in (tmp_path / "in" / subject / "anat").iterdir():
            path.unlink()
        write_case(tmp_path / "tmp", subject, names=BIDS, sep="_")
        for path in (tmp_path / "tmp" / subject).iterdir():
            path.rename(tmp_path / "in" / subject / "anat" / path.name)
    cases = discover_cases(tmp_path / "in")
    assert [c.case_id for c in cases] == ["sub-01", "sub-02"]
    assert all(len(c.files) == 4 and not c.problems and not c.warnings for c in cases)


def test_a_missing_sequence_names_the_nifti_files_not_read(tmp_path: Path) -> None:
    """F8, the fallback: a case with a sequence under a name not read (``P1_MPRAGE``) is
    warned, naming that file and the names that are read."""
    folder = write_case(tmp_path / "in", "P1", skip=("t1n",))
    image = nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4))
    nib.save(image, folder / "P1_MPRAGE.nii.gz")
    (case,) = discover_cases(folder)
    assert case.missing == ["t1n"]
    (warning,) = case.warnings
    assert "P1_MPRAGE.nii.gz" in warning and "no file named like a t1n image" in warning
    assert "_T1w" in warning and "<ID>-t1n" in warning and "P1-seg" not in warning
