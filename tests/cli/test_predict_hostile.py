"""`brats-goat predict` as a real process against hostile conditions (issue 17): a second run
into a busy OUTPUT, a real full disk, grids the model does not take as they are.

Everything here runs ``python -m brats_goat.cli`` in a child process on NIfTI files written
to disk, and checks only what a user sees: exit code, messages, files and ``report.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_goat.evaluation.metrics import dice
from tests.conftest import rewrite_header_raw, tree_digest, write_case
from tests.io.test_resample import lps, phantom, save_case, thick_slices

ROOT = Path(__file__).resolve().parents[2]
INTENSITY = ("--method", "intensity", "--refine", "none", "--device", "cpu", "--quiet")


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "brats_goat.cli", *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BRATS_GOAT_REFINE": "none"}


def run(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args), capture_output=True, text=True, env=env(), timeout=timeout, check=False
    )


def leftovers(folder: Path) -> list[str]:
    """Temporary or lock files under ``folder``: none may outlive a run."""
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock"))


# -- item 6: one writer per OUTPUT --------------------------------------------------------


def test_second_process_into_a_busy_output_is_refused(tmp_path: Path) -> None:
    """Issue 17, item 6: two runs into one OUTPUT both exited 0 and the later report
    overwrote the other's. The first run is frozen (SIGSTOP) right after its first case,
    so it holds OUTPUT while the second starts; it then finishes untouched."""
    first_in, second_in, out = tmp_path / "in1", tmp_path / "in2", tmp_path / "out"
    for case_id in ("A-1", "B-2", "C-3"):
        write_case(first_in, case_id)
    write_case(second_in, "Z-9")
    first = subprocess.Popen(
        cli("predict", first_in, out, *INTENSITY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "A-1.nii.gz").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first case was not written in time"
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)
        before = sorted(p.name for p in out.iterdir())
        second = run("predict", second_in, out, *INTENSITY)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"OUTPUT {out} is in use by another brats-goat run" in second.stderr
        assert f"PID {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert sorted(p.name for p in out.iterdir()) == before, "the refused run wrote nothing"
        first.send_signal(signal.SIGCONT)
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGCONT)
            first.kill()
            first.wait()
    assert first.returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert [c["case_id"] for c in report["cases"]] == ["A-1", "B-2", "C-3"]
    assert not (out / "Z-9.nii.gz").exists()
    assert leftovers(out) == []


# -- item 5: a real full disk -----------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 64 KiB tmpfs (a real file system that fills up), where ``mount`` is allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, free_pages: int) -> None:
    """Leave about ``free_pages`` 4 KiB pages free on ``disk``."""
    stat = os.statvfs(disk)
    keep = free_pages * stat.f_frsize
    size = max(stat.f_bavail * stat.f_frsize - keep, 0)
    (disk / "filler").write_bytes(b"\0" * size)


@pytest.mark.parametrize("free_pages", [0, 2, 3, 5, 7, 8, 12])
def test_real_full_disk_leaves_a_true_report_or_none(
    tmp_path: Path, tiny_disk: Path, free_pages: int
) -> None:
    """Issue 17, item 5: on a full disk the report said "2/2 ok" while the third case
    failed, and a truncated ``.report.json.*.tmp`` stayed. Whatever moment the disk fills
    up, the run must end with a report that matches the files written (or with no report
    and exit 3), name the cause, and leave no temporary file."""
    inp = tmp_path / "in"
    for case_id in ("A-1", "B-2", "C-3"):
        write_case(inp, case_id)
    before = tree_digest(inp)
    out = tiny_disk / "out"
    out.mkdir()
    fill(tiny_disk, free_pages)
    result = run("predict", inp, out, *INTENSITY)
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert leftovers(tiny_disk) == []
    assert tree_digest(inp) == before
    labels = {p.name.removesuffix(".nii.gz") for p in out.glob("*.nii.gz")}
    if not (out / "report.json").exists():
        assert result.returncode == 3, text
        assert "No space left on device" in text
        return
    report = json.loads((out / "report.json").read_text())
    assert (report["state"], report["cases_total"]) == ("finished", 3)
    ok = {c["case_id"] for c in report["cases"] if c["status"] == "ok"}
    assert ok == labels, "the report says ok exactly for the label maps on disk"
    failed = [c for c in report["cases"] if c["status"] != "ok"]
    assert all("No space left on device" in c["error"] for c in failed)
    assert result.returncode == (1 if failed else 0), text


# -- item 8: other grids ----------------------------------------------------------------

#: The tumour's offset from the brain's centre (mm) in these two cases.
TUMOUR_OFFSET = (45.0, 0.0, 4.0)


def test_wide_grid_is_framed_on_the_brain_and_written_on_its_own_grid(tmp_path: Path) -> None:
    """Issue 17, item 8: a grid wider than 240 x 240 was centre-cropped without a word, and
    what lay outside the crop (here most of the tumour) was never segmented."""
    shape = (300, 300, 72)
    images, tumour = phantom(shape, 1.0, (225.0, 150.0, 36.0), tumour_offset=TUMOUR_OFFSET)
    save_case(tmp_path / "in", "WIDE-1", images, lps((1, 1, 1), shape))
    assert tumour[270:].any()  # outside the centred window 30..269
    result = run("predict", tmp_path / "in", tmp_path / "out", *INTENSITY)
    assert result.returncode == 0, result.stderr
    image = nib.load(tmp_path / "out" / "WIDE-1.nii.gz")
    assert image.shape == shape
    assert dice(np.asarray(image.dataobj) > 0, tumour) >= 0.95
    (case,) = json.loads((tmp_path / "out" / "report.json").read_text())["cases"]
    assert (case.get("resampled") or {}).get("to", {}).get("shape", [])[:2] == [240, 240]


def test_thick_slices_are_resampled_and_said_so(tmp_path: Path) -> None:
    """Issue 17, item 8: 1 x 1 x 3 mm voxels were taken as 1 mm ones without a word
    (whole-tumour Dice 0.956 against the same phantom at 1 mm). The case is segmented on a
    1 mm frame, written back on its own grid, and the report says so."""
    shape = (140, 160, 72)
    images, _ = phantom(shape, 1.0, (70.0, 80.0, 36.0), tumour_offset=TUMOUR_OFFSET)
    save_case(tmp_path / "iso", "ISO-1", images, lps((1, 1, 1), shape))
    thick = {m: thick_slices(a) for m, a in images.items()}
    affine = lps((1, 1, 3), shape)
    affine[2, 3] = 1.0  # thick slice k covers 1 mm slices 3k..3k+2: its centre is 3k + 1
    save_case(tmp_path / "in", "THICK-1", thick, affine)
    for name in ("iso", "in"):
        result = run("predict", tmp_path / name, tmp_path / f"out-{name}", *INTENSITY)
        assert result.returncode == 0, result.stderr
    iso = np.asarray(nib.load(tmp_path / "out-iso" / "ISO-1.nii.gz").dataobj) > 0
    image = nib.load(tmp_path / "out-in" / "THICK-1.nii.gz")
    assert image.shape == (140, 160, 24) and np.array_equal(image.affine, affine)
    assert dice(np.asarray(image.dataobj) > 0, iso[:, :, 1::3]) >= 0.97
    (case,) = json.loads((tmp_path / "out-in" / "report.json").read_text())["cases"]
    assert (case.get("resampled") or {}).get("from") == {
        "shape": [140, 160, 24],
        "spacing_mm": [1.0, 1.0, 3.0],
    }
    assert any("1x1x3 mm" in w for w in case["warnings"])


# -- item 12: merge-reports on hand-edited shard reports of real runs --------------------


@pytest.fixture(scope="module")
def shard_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUTPUT of a real two-shard run over three cases (two reports, three label maps)."""
    root = tmp_path_factory.mktemp("shards")
    for case_id in ("A-1", "B-2", "C-3"):
        write_case(root / "in", case_id)
    for shard in ("1/2", "2/2"):
        done = run("predict", root / "in", root / "out", *INTENSITY, "--shard", shard)
        assert done.returncode == 0, done.stderr
    return root / "out"


def _case_status_removed(report: dict) -> None:
    del report["cases"][0]["status"]


def _case_id_number(report: dict) -> None:
    report["cases"][0]["case_id"] = 7


def _cases_object(report: dict) -> None:
    report["cases"] = {"A-1": "ok"}


def _shard_index_edited(report: dict) -> None:
    report["shard"]["index"] = 2


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_case_status_removed, "cases[0].status"),
        (_case_id_number, "cases[0].case_id"),
        (_cases_object, "'cases'"),
        (_shard_index_edited, "field 'shard' says 2/2"),
    ],
    ids=["no-status", "case-id-number", "cases-object", "shard-index"],
)
def test_merge_reports_of_edited_real_shard_reports_is_a_usage_error(
    tmp_path: Path, shard_run: Path, edit, field: str
) -> None:
    """Issue 17, item 12: KeyError, TypeError or AttributeError tracebacks, and "missing
    shard report(s) 2/2 (found 2 of 2)" for an edited index. Now exit 2 naming the file
    and the field, and no merged report."""
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(shard_run), str(out)], check=True)
    edited = out / "report-shard-1-of-2.json"
    report = json.loads(edited.read_text())
    edit(report)
    edited.write_text(json.dumps(report))
    result = run("merge-reports", out)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert str(edited.name) in result.stderr and field in result.stderr, result.stderr
    assert not (out / "report.json").exists()


# -- further hostile inputs (not in the list) --------------------------------------


def _modality(folder: Path, modality: str) -> Path:
    return next(folder.glob(f"*-{modality}.nii.gz"))


def _resave(path: Path, data: np.ndarray) -> None:
    """``data`` in place of ``path``'s voxels, with its affine and codes."""
    affine = nib.load(path).affine
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, 1)
    image.set_sform(affine, 1)
    path.unlink()
    nib.save(image, path)


def _complex(folder: Path) -> None:
    path = _modality(folder, "t2f")
    _resave(path, np.asarray(nib.load(path).dataobj).astype(np.complex64))


def _rgb(folder: Path) -> None:
    path = _modality(folder, "t1n")
    data = np.asarray(nib.load(path).dataobj)
    rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.clip(data // 8, 0, 255)
    _resave(path, rgb)


def _huge_header(folder: Path) -> None:
    def edit(header) -> None:
        header.set_data_shape((4000, 4000, 4000))

    path = _modality(folder, "t2w")
    rewrite_header_raw(path, edit)


def _zero_axes(folder: Path) -> None:
    def edit(header) -> None:
        header["pixdim"][1:4] = 0
        header["qform_code"], header["sform_code"] = 0, 1
        for row in ("srow_x", "srow_y", "srow_z"):
            header[row][:] = 0

    for modality in ("t1n", "t1c", "t2w", "t2f"):
        rewrite_header_raw(_modality(folder, modality), edit)


def _nan_affine(folder: Path) -> None:
    def edit(header) -> None:
        header["qform_code"], header["sform_code"] = 0, 1
        header["srow_x"][0] = np.nan

    for modality in ("t1n", "t1c", "t2w", "t2f"):
        rewrite_header_raw(_modality(folder, modality), edit)


def _overflowing_slope(folder: Path) -> None:
    path = _modality(folder, "t2f")
    image = nib.load(path)
    scaled = nib.Nifti1Image(np.asarray(image.dataobj), image.affine, image.header)
    scaled.header.set_slope_inter(1e38, 0)
    path.unlink()
    nib.save(scaled, path)


def _folder_for_file(folder: Path) -> None:
    path = _modality(folder, "t1c")
    path.unlink()
    path.mkdir()


def _fifo_for_file(folder: Path) -> None:
    path = _modality(folder, "t1c")
    path.unlink()
    os.mkfifo(path)


#: case ID -> (how its folder is broken, what its error must say)
BROKEN = {
    "B-complex": (_complex, "holds complex voxels (complex64): a magnitude image is required"),
    "B-rgb": (_rgb, "not an intensity image"),
    "B-huge": (_huge_header, "its header claims shape (4000, 4000, 4000)"),
    "B-zero-axes": (_zero_axes, "voxel-to-world matrix has a zero voxel size or axis"),
    "B-nan-affine": (_nan_affine, "voxel-to-world matrix has entries that are not finite"),
    "B-slope": (_overflowing_slope, "scl_slope 1e+38, scl_inter 0) overflows float32"),
    "B-folder": (_folder_for_file, "t1c file {} is not a regular file (it is a folder)"),
    "B-fifo": (_fifo_for_file, "t1c file {} is not a regular file (it is a named pipe (FIFO))"),
}


def test_hostile_cases_fail_alone_and_named(tmp_path: Path) -> None:
    """Hostile inputs beyond the issue's list: each used to end as "ok" on garbage (complex
    voxels cast to their real part; a folder or FIFO named like t1c taken as an absent t1c),
    as an "unexpected MemoryError/ValueError" with a traceback in the report (a header
    claiming 4000^3 voxels, a singular affine), or with a misleading cause (a NaN affine as
    "different grids", an overflowing scl_slope as "all zero"). Now each fails alone, named,
    in one run beside a good case, without hanging on the FIFO."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    for case_id, (brake, _) in BROKEN.items():
        brake(write_case(inp, case_id))
    before = tree_digest(inp)
    result = run("predict", inp, out, *INTENSITY, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    cases = {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}
    assert cases["A-1"]["status"] == "ok"
    for case_id, (_, message) in BROKEN.items():
        case = cases[case_id]
        path = _modality(inp / case_id, "t1c") if "{}" in message else None
        assert case["status"] == "failed", (case_id, case)
        assert message.format(path) in case["error"], (case_id, case["error"])
        assert not any("Traceback" in w for w in case["warnings"]), case_id
    assert sorted(p.name for p in out.iterdir()) == ["A-1.nii.gz", "report.json"]
    assert tree_digest(inp) == before


def test_link_back_to_a_parent_folder_is_not_a_nested_case(tmp_path: Path) -> None:
    """A symbolic link inside a case folder that points back up (``up -> ..``) made the
    case look nested inside itself: a usage error refusing the whole run."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(inp, "B-2")
    os.symlink("..", inp / "A-1" / "up")
    result = run("predict", inp, out, *INTENSITY)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["A-1.nii.gz", "B-2.nii.gz", "report.json"]


def test_nifti2_input_gives_a_nifti2_output_with_its_geometry(tmp_path: Path) -> None:
    """A NIfTI-2 case was written as NIfTI-1 from a NIfTI-2 header ("sizeof_hdr should be
    348" on stderr)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    folder = write_case(inp, "N2-1")
    for path in folder.glob("*.nii.gz"):
        image = nib.load(path)
        converted = nib.Nifti2Image(np.asarray(image.dataobj), image.affine)
        converted.set_qform(image.affine, 1)
        converted.set_sform(image.affine, 1)
        path.unlink()
        nib.save(converted, path)
    result = run("predict", inp, out, *INTENSITY)
    assert result.returncode == 0, result.stderr
    assert "sizeof_hdr" not in result.stderr
    written = nib.load(out / "N2-1.nii.gz")
    source = nib.load(_modality(folder, "t2f"))
    assert isinstance(written, nib.Nifti2Image)
    assert written.shape == source.shape and np.array_equal(written.affine, source.affine)


def test_modality_in_another_format_is_named_in_the_warning(tmp_path: Path) -> None:
    """``X-t1n.img`` (Analyze) or ``X-t1n.mha`` is not read: the warning about the absent
    t1n names the file that was passed over, instead of only "no t1n"."""
    inp, out = tmp_path / "in", tmp_path / "out"
    folder = write_case(inp, "M-1")
    path = _modality(folder, "t1n")
    image = nib.load(path)
    nib.save(nib.AnalyzeImage(np.asarray(image.dataobj), image.affine), folder / "M-1-t1n.img")
    path.unlink()
    result = run("predict", inp, out, *INTENSITY)
    assert result.returncode == 0, result.stderr
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert any(
        "no t1n" in w and "M-1-t1n.hdr, M-1-t1n.img: not NIfTI" in w for w in case["warnings"]
    ), case["warnings"]


def test_output_that_is_a_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """It said "is not writable: [Errno 17] File exists"."""
    write_case(tmp_path / "in", "A-1")
    (tmp_path / "out").write_text("notes")
    result = run("predict", tmp_path / "in", tmp_path / "out", *INTENSITY)
    assert result.returncode == 2
    assert f"OUTPUT {tmp_path / 'out'} exists and is not a folder" in result.stderr
    assert (tmp_path / "out").read_text() == "notes"


def test_evaluate_names_a_truncated_label_map(tmp_path: Path) -> None:
    """It said only "EOFError: Compressed file ended before the end-of-stream marker was
    reached", naming neither the file nor what it means."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    folder = write_case(ref, "E-1")
    pred.mkdir()
    seg = folder / "E-1-seg.nii.gz"
    truncated = pred / "E-1.nii.gz"
    truncated.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    result = run("evaluate", pred, ref)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{truncated}: not a readable NIfTI label map (truncated or corrupt" in (
        result.stdout + result.stderr
    )
