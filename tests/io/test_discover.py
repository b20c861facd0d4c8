from __future__ import annotations

from pathlib import Path

import pytest

from brats_goat.io.discover import discover_cases, split_suffix
from tests.conftest import NAMES_LEGACY


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BraTS-GLI-00001-000-t1c.nii.gz", ("BraTS-GLI-00001-000", "t1c")),
        ("BraTS20_Training_001_t1ce.nii", ("BraTS20_Training_001", "t1ce")),
        ("X_flair.NII.GZ", ("X", "flair")),
        ("notes.txt", None),
        ("t1n.nii.gz", None),
    ],
)
def test_split_suffix(name: str, expected: tuple[str, str] | None) -> None:
    assert split_suffix(name) == expected


@pytest.mark.parametrize("sep", ["-", "_"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_legacy_and_2023_names(case_writer, sep: str, ext: str) -> None:
    root = case_writer("NEW-001", sep=sep, ext=ext).parent
    case_writer("OLD_002", names=NAMES_LEGACY, sep=sep, ext=ext)
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["NEW-001", "OLD_002"]
    for case in cases:
        assert sorted(case.files) == ["t1c", "t1n", "t2f", "t2w"]
        assert case.reference is not None and "seg" in case.reference.name
        assert not case.problems


def test_single_case_folder_is_accepted(case_writer) -> None:
    folder = case_writer("ONLY-1")
    cases = discover_cases(folder)
    assert len(cases) == 1 and cases[0].case_id == "ONLY-1"


def test_missing_modality_listed(case_writer) -> None:
    folder = case_writer("MISS-1", skip=("t2f",))
    (case,) = discover_cases(folder)
    assert case.missing == ["t2f"]


def test_two_files_for_one_modality_is_a_problem(case_writer) -> None:
    folder = case_writer("DUP-1")
    (folder / "DUP-1-t1n.nii.gz").rename(folder / "DUP-1_t1.nii.gz")
    case_writer("DUP-1", ext=".nii", skip=("t1c", "t2w", "t2f"))
    (case,) = discover_cases(folder)
    assert any("two files for t1n" in p for p in case.problems)


def test_case_ids_equal_ignoring_case_are_duplicates(tmp_path: Path, case_writer) -> None:
    case_writer("BraTS-X-1")
    case_writer("brats-x-1")
    cases = discover_cases(tmp_path / "in")
    assert len(cases) == 2
    assert all(any("duplicate case ID" in p for p in c.problems) for c in cases)


def test_folders_without_images_are_not_cases(tmp_path: Path, case_writer) -> None:
    case_writer("A-1")
    (tmp_path / "in" / "notes").mkdir()
    (tmp_path / "in" / "notes" / "readme.txt").write_text("x")
    assert [c.case_id for c in discover_cases(tmp_path / "in")] == ["A-1"]


def test_folder_with_unrecognised_images_is_reported(tmp_path: Path, case_writer) -> None:
    case_writer("A-1")
    odd = tmp_path / "in" / "B-2"
    odd.mkdir()
    (odd / "B-2-T1w.nii.gz").write_bytes(b"")
    cases = {c.case_id: c for c in discover_cases(tmp_path / "in")}
    assert not cases["A-1"].problems
    assert any("no image named like" in p and "B-2-T1w.nii.gz" in p for p in cases["B-2"].problems)


def test_flat_folder_of_several_cases_groups_by_prefix(tmp_path: Path) -> None:
    from tests.conftest import write_case

    flat = tmp_path / "flat"
    for cid in ("C-1", "C-2"):
        folder = write_case(tmp_path / "src", cid)
        flat.mkdir(exist_ok=True)
        for f in folder.iterdir():
            f.rename(flat / f.name)
    cases = discover_cases(flat)
    assert [c.case_id for c in cases] == ["C-1", "C-2"]
    assert all(sorted(c.files) == ["t1c", "t1n", "t2f", "t2w"] and not c.problems for c in cases)
