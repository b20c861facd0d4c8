from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from brats_goat.io.discover import MAX_CASE_DEPTH, DiscoveryError, discover_cases
from brats_goat.io.names import split_suffix
from brats_goat.io.read import CaseError, load_case
from tests.conftest import NAMES_LEGACY, write_case
from tests.unprivileged import requires_file_modes, run_unprivileged


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
    (odd / "B-2-PDw.nii.gz").write_bytes(b"")
    cases = {c.case_id: c for c in discover_cases(tmp_path / "in")}
    assert not cases["A-1"].problems
    assert any("no image named like" in p and "B-2-PDw.nii.gz" in p for p in cases["B-2"].problems)


def test_flat_folder_of_several_cases_groups_by_prefix(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for cid in ("C-1", "C-2"):
        folder = write_case(tmp_path / "src", cid)
        flat.mkdir(exist_ok=True)
        for f in folder.iterdir():
            f.rename(flat / f.name)
    cases = discover_cases(flat)
    assert [c.case_id for c in cases] == ["C-1", "C-2"]
    assert all(sorted(c.files) == ["t1c", "t1n", "t2f", "t2w"] and not c.problems for c in cases)


def test_files_without_a_case_id_beside_a_flat_case_are_named(tmp_path: Path) -> None:
    """``-t1n.nii.gz`` (no ID before the modality) next to a flat case's files was grouped
    as a case named after the folder that failed "missing modality ... expected files like
    flat-t2f.nii.gz", which named neither the file nor its fault."""
    flat = tmp_path / "flat"
    folder = write_case(tmp_path / "src", "C-1")
    flat.mkdir()
    for f in folder.iterdir():
        f.rename(flat / f.name)
    (flat / "-t1n.nii.gz").write_bytes((flat / "C-1-t1n.nii.gz").read_bytes())
    cases = {c.case_id: c for c in discover_cases(flat)}
    assert not cases["C-1"].problems
    (problem,) = cases["flat"].problems
    assert problem.startswith(f"-t1n.nii.gz in {flat}: no case ID before the modality")


def test_folder_and_fifo_named_like_modalities_are_problems(case_writer) -> None:
    """They used to be passed over, so the case ran without that modality (exit 0)."""
    folder = case_writer("F-1")
    t1c, t2w = folder / "F-1-t1c.nii.gz", folder / "F-1-t2w.nii.gz"
    t1c.unlink()
    t1c.mkdir()
    t2w.unlink()
    os.mkfifo(t2w)
    (case,) = discover_cases(folder)
    assert sorted(case.files) == ["t1c", "t1n", "t2f", "t2w"]
    assert case.problems == [
        f"t1c file {t1c} is not a regular file (it is a folder); put the image file there",
        f"t2w file {t2w} is not a regular file (it is a named pipe (FIFO)); put the image "
        "file there",
    ]
    with pytest.raises(CaseError, match="not a regular file"):
        load_case(case)  # never opens the FIFO (which would wait for a writer)


def test_case_folder_in_another_format_is_a_case_that_fails(tmp_path: Path) -> None:
    """A case folder of ``.mha`` files next to a NIfTI case was skipped in silence (exit 0,
    "1/1 succeeded")."""
    write_case(tmp_path / "in", "A-1")
    folder = write_case(tmp_path / "in", "M-2")
    for path in sorted(folder.glob("*.nii.gz")):
        path.rename(path.with_name(path.name.replace(".nii.gz", ".mha")))
    cases = {c.case_id: c for c in discover_cases(tmp_path / "in")}
    assert sorted(cases) == ["A-1", "M-2"]
    (problem,) = cases["M-2"].problems
    assert "found no NIfTI file; in another format, not read: M-2-seg.mha" not in problem
    assert "in another format, not read: M-2-t1c.mha, M-2-t1n.mha, M-2-t2f.mha" in problem
    assert problem.endswith("(convert them to .nii.gz))")


def test_case_id_with_a_newline_is_a_case(tmp_path: Path) -> None:
    """The file-name pattern stopped at the newline: the case was never seen."""
    write_case(tmp_path / "in", "A-1")
    write_case(tmp_path / "in", "B\n2")
    assert [c.case_id for c in discover_cases(tmp_path / "in")] == ["A-1", "B\n2"]


def test_link_back_up_is_not_searched(tmp_path: Path) -> None:
    """``A-1/up -> ..`` made A-1 hold a case folder (``up/A-1``): the layout was refused."""
    write_case(tmp_path / "in", "A-1")
    write_case(tmp_path / "in", "B-2")
    (tmp_path / "in" / "A-1" / "up").symlink_to("..")
    (tmp_path / "in" / "loop").symlink_to(".")
    assert [c.case_id for c in discover_cases(tmp_path / "in")] == ["A-1", "B-2"]


def test_linked_case_folder_is_still_followed(tmp_path: Path) -> None:
    write_case(tmp_path / "store", "A-1")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "A-1").symlink_to(tmp_path / "store" / "A-1")
    assert [c.case_id for c in discover_cases(tmp_path / "in")] == ["A-1"]


# ------------------------------------------------ layouts: no case is ever dropped in silence


def _move_files(folder: Path, into: Path) -> list[str]:
    """Move a case's files into ``into`` (a stray set at INPUT's root); their names."""
    names = sorted(p.name for p in folder.iterdir())
    for name in names:
        (folder / name).rename(into / name)
    folder.rmdir()
    return names


def test_stray_image_files_next_to_case_folders_are_refused(tmp_path: Path, case_writer) -> None:
    """Issue 17, item 1: INPUT's own images used to hide every case folder ("1/1 ok")."""
    case_writer("A-1")
    case_writer("B-2")
    root = tmp_path / "in"
    _move_files(case_writer("STRAY"), root)
    with pytest.raises(DiscoveryError) as info:
        discover_cases(root)
    msg = str(info.value)
    assert "STRAY-t1c.nii.gz" in msg and "A-1" in msg and "B-2" in msg
    assert "cannot be both one case and a folder of cases" in msg


def test_one_stray_modality_file_is_refused_too(tmp_path: Path, case_writer) -> None:
    case_writer("A-1")
    root = tmp_path / "in"
    shutil.copy(root / "A-1" / "A-1-t2f.nii.gz", root / "copy-t2f.nii.gz")
    with pytest.raises(DiscoveryError, match=r"copy-t2f\.nii\.gz.*A-1"):
        discover_cases(root)


def test_non_image_nifti_at_the_root_hides_nothing(tmp_path: Path, case_writer) -> None:
    case_writer("A-1")
    root = tmp_path / "in"
    shutil.copy(root / "A-1" / "A-1-seg.nii.gz", root / "atlas.nii.gz")
    assert [c.case_id for c in discover_cases(root)] == ["A-1"]


def test_case_one_level_deeper_next_to_case_folders_is_found(tmp_path: Path) -> None:
    """Issue 17, item 2: a nested case next to normal ones was skipped with exit 0."""
    root = tmp_path / "in"
    write_case(root, "A-1")
    write_case(root, "B-2")
    write_case(root / "extra", "C-3")
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["A-1", "B-2", "C-3"]
    assert cases[2].folder == root / "extra" / "C-3" and not cases[2].problems


def test_folder_of_only_nested_cases_is_searched(tmp_path: Path) -> None:
    """Issue 17, item 2: this used to say only "no cases found"."""
    root = tmp_path / "in"
    write_case(root / "GLI" / "val", "G-1")
    write_case(root / "MET", "M-1")
    assert [c.case_id for c in discover_cases(root)] == ["G-1", "M-1"]


def test_cases_three_levels_down_are_found_four_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_case(root / "a" / "b", "DEEP-3")
    assert MAX_CASE_DEPTH == 3
    assert [c.case_id for c in discover_cases(root)] == ["DEEP-3"]
    write_case(root / "a" / "b" / "c", "DEEP-4")
    with pytest.raises(DiscoveryError) as info:
        discover_cases(root)
    assert "DEEP-4-t1c.nii.gz" in str(info.value) and "3 levels deep" in str(info.value)


def test_case_folder_that_also_holds_a_case_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "in"
    outer = write_case(root, "OUT-1")
    write_case(outer, "IN-2")
    with pytest.raises(DiscoveryError, match=r"case folder .*OUT-1 holds image files.*IN-2"):
        discover_cases(root)


def test_one_case_folder_as_input_with_a_non_case_sub_folder(tmp_path: Path) -> None:
    folder = write_case(tmp_path / "in", "ONE-1")
    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("not a case")
    (case,) = discover_cases(folder)
    assert case.case_id == "ONE-1" and not case.problems


def test_same_id_in_two_groups_is_a_duplicate(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_case(root / "train", "X-1")
    write_case(root / "val", "X-1")
    cases = discover_cases(root)
    assert len(cases) == 2
    assert all(any("duplicate case ID" in p for p in c.problems) for c in cases)


def test_lost_and_found_is_never_a_case(tmp_path: Path, case_writer) -> None:
    case_writer("A-1")
    lost = tmp_path / "in" / "lost+found"
    lost.mkdir()
    (lost / "#1234.nii.gz").write_bytes(b"")
    assert [c.case_id for c in discover_cases(tmp_path / "in")] == ["A-1"]


def test_dangling_modality_link_is_a_problem_naming_the_link(case_writer) -> None:
    """Issue 17, item 9: it used to count as an absent modality (exit 0, a warning)."""
    folder = case_writer("L-1")
    link = folder / "L-1-t2f.nii.gz"
    link.unlink()
    link.symlink_to(folder.parent / "gone" / "L-1-t2f.nii.gz")
    (case,) = discover_cases(folder)
    assert case.missing == []
    (problem,) = case.problems
    assert str(link) in problem and "dangling symbolic link" in problem and "gone" in problem
    with pytest.raises(CaseError, match="dangling symbolic link"):
        load_case(case, allow_missing=True)


def test_dangling_reference_link_is_not_a_problem(case_writer) -> None:
    folder = case_writer("L-2")
    link = folder / "L-2-seg.nii.gz"
    link.unlink()
    link.symlink_to(folder / "nowhere.nii.gz")
    (case,) = discover_cases(folder)
    assert case.reference is None and not case.problems


@requires_file_modes
def test_unreadable_folders(tmp_path: Path, case_writer) -> None:
    """Issue 17, item 10: an unreadable case folder is a case with a problem (it fails alone);
    an unreadable INPUT is a ``DiscoveryError``, not a PermissionError traceback."""
    case_writer("A-1")
    locked = case_writer("B-2")
    root = tmp_path / "in"
    code = (
        "import sys\n"
        "from brats_goat.io.discover import DiscoveryError, discover_cases\n"
        "try:\n"
        "    for case in discover_cases(sys.argv[1]):\n"
        "        print(case.case_id, case.problems)\n"
        "except DiscoveryError as exc:\n"
        "    print('DiscoveryError', exc)\n"
    )
    locked.chmod(0)
    try:
        per_case = run_unprivileged(["-c", code, str(root)])
        root.chmod(0o600)  # listable names, but no entry can be looked at
        whole = run_unprivileged(["-c", code, str(root)])
    finally:
        root.chmod(0o755)
        locked.chmod(0o755)
    assert per_case.returncode == 0, per_case.stderr
    lines = per_case.stdout.splitlines()
    assert lines[0] == "A-1 []"
    assert lines[1].startswith("B-2 [") and f"cannot read folder {locked}" in lines[1]
    assert "permission denied" in lines[1]
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.startswith(f"DiscoveryError cannot read INPUT {root}")


def test_case_folder_given_as_dot_takes_its_resolved_name(
    case_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27, item 4: ``.`` as INPUT gave the case an empty ID."""
    monkeypatch.chdir(case_writer("BraTS-X-1"))
    (case,) = discover_cases(Path("."))
    assert case.case_id == "BraTS-X-1" and not case.problems


BRATS_ORDER = ("t1n", "t1c", "t2w", "t2f")  # nnU-Net's Dataset137_BraTS21
MSD_ORDER = ("t2f", "t1n", "t1c", "t2w")  # the Decathlon's Task01_BrainTumour


def write_nnunet_case(
    folder: Path, case_id: str, ext: str = ".nii.gz", order: tuple[str, ...] = BRATS_ORDER
) -> dict[str, bytes]:
    """An nnU-Net ``imagesTs`` case (``<ID>_0000`` ... ``_0003``) made of a written case's
    files in ``order``; returns each modality's file bytes."""
    source = write_case(folder / ".src", case_id, ext=ext)
    channels = {}
    for i, modality in enumerate(order):
        target = folder / f"{case_id}_{i:04d}{ext}"
        shutil.move(source / f"{case_id}-{modality}{ext}", target)
        channels[modality] = target.read_bytes()
    shutil.rmtree(folder / ".src")
    return channels


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_nnunet_channel_files_are_refused_with_the_conversion(tmp_path: Path, ext: str) -> None:
    """Issue 27: ``<ID>_0000.nii.gz`` ... in one folder used to be "no cases found" (flat)
    or a case failing with "no image named like" (in a sub-folder). Their numbers do not
    say which sequence each is (nnU-Net's BraTS order and the Decathlon's differ), so the
    run is refused with a conversion that, run as printed, gives case folders."""
    root = tmp_path / "dataset" / "imagesTs"
    root.mkdir(parents=True)
    channels = write_nnunet_case(root, "BraTS-GLI-00001-000", ext)
    write_nnunet_case(root, "BraTS-GLI-00002-000", ext)
    for inp in (root, root.parent):  # flat INPUT, or its imagesTs one level down
        with pytest.raises(DiscoveryError) as info:
            discover_cases(inp)
        message = str(info.value)
        assert "nnU-Net" in message and "2 case(s)" in message and "\n" not in message
        assert "0000 t1n, 0001 t1c, 0002 t2w, 0003 t2f" in message
        assert "0000 FLAIR" in message and "dataset.json" in message
    command = message.split("for the BraTS order: ", 1)[1]
    subprocess.run(["bash", "-c", command], check=True)
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    assert not cases[0].problems and sorted(cases[0].files) == ["t1c", "t1n", "t2f", "t2w"]
    for modality, data in channels.items():
        assert cases[0].files[modality].read_bytes() == data
        assert cases[0].files[modality].name == f"BraTS-GLI-00001-000-{modality}{ext}"


def test_numbered_file_without_channel_0000_is_not_taken_for_nnunet(case_writer) -> None:
    """A mask or atlas ``atlas_0001.nii.gz`` next to case folders is still passed over."""
    root = case_writer("CASE-1").parent
    shutil.copy(root / "CASE-1" / "CASE-1-t1n.nii.gz", root / "atlas_0001.nii.gz")
    assert [c.case_id for c in discover_cases(root)] == ["CASE-1"]


@pytest.mark.parametrize(
    ("key", "names", "order"),
    [
        ("channel_names", {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}, BRATS_ORDER),
        ("channel_names", {"0": "T1", "1": "T1C", "2": "T2W", "3": "T2F"}, BRATS_ORDER),
        ("modality", {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}, MSD_ORDER),
    ],
)
def test_nnunet_channel_files_are_read_in_the_order_dataset_json_declares(
    tmp_path: Path, key: str, names: dict[str, str], order: tuple[str, ...]
) -> None:
    """With nnU-Net's dataset.json beside ``imagesTs`` (v2 ``channel_names``, v1
    ``modality``), the order is the dataset's own: read, and said in the case's warnings."""
    root = tmp_path / "Dataset001" / "imagesTs"
    root.mkdir(parents=True)
    (root.parent / "dataset.json").write_text(json.dumps({key: names}))
    channels = write_nnunet_case(root, "P1", order=order)
    (case,) = discover_cases(root)
    assert case.case_id == "P1" and not case.problems
    assert {m: case.files[m].read_bytes() for m in case.files} == channels
    assert case.files[order[0]].name == "P1_0000.nii.gz"
    assert case.warnings == [
        f"nnU-Net channel files read in the order {root.parent / 'dataset.json'} gives: "
        + ", ".join(f"{i:04d} {m}" for i, m in enumerate(order))
    ]


@pytest.mark.parametrize(
    ("names", "why"),
    [
        ({"0": "CT"}, "unknown 0000 'CT'"),
        ({"0": "T1", "1": "T1w"}, "two channels name one sequence"),
        ("T1", "gives no channel_names"),
    ],
)
def test_nnunet_dataset_json_that_names_no_brats_sequence_is_refused(
    tmp_path: Path, names: object, why: str
) -> None:
    root = tmp_path / "imagesTs"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"channel_names": names}))
    write_nnunet_case(root, "P1")
    with pytest.raises(DiscoveryError, match="nnU-Net-style") as info:
        discover_cases(root)
    assert why in str(info.value) and str(root / "dataset.json") in str(info.value)
