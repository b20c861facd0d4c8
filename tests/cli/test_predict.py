"""End-to-end `brats-goat predict` on tiny synthetic cases with a real tiny checkpoint."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io.write import write_nifti_atomic
from brats_goat.run.placeholder import is_placeholder
from brats_goat.run.report import REPORT_BEGIN, REPORT_END
from tests.conftest import NAMES_LEGACY, tree_digest

RAS = np.eye(4)


def run(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def predict_args(inp: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["predict", str(inp), str(out), "--weights", str(weights), "--quiet", *extra]


def test_predict_end_to_end(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("BraTS-GLI-00001-000", dtype=np.int16)
    case_writer("Legacy_002", names=NAMES_LEGACY, sep="_", ext=".nii", dtype=np.float64)
    inp, out = tmp_path / "in", tmp_path / "out"
    before = tree_digest(inp)
    result = run(predict_args(inp, out, tiny_weights, "--save-maps"))
    assert result.exit_code == 0, result.output
    assert tree_digest(inp) == before, "inputs must never be modified"
    for case_id, t1c_name in [
        ("BraTS-GLI-00001-000", "BraTS-GLI-00001-000-t1c.nii.gz"),
        ("Legacy_002", "Legacy_002_t1ce.nii"),
    ]:
        ref = nib.load(inp / case_id / t1c_name)
        pred = nib.load(out / f"{case_id}.nii.gz")
        assert pred.shape == ref.shape
        np.testing.assert_allclose(pred.affine, ref.affine)
        assert pred.get_data_dtype() == np.uint8
        assert int(pred.header["qform_code"]) == int(ref.header["qform_code"]) == 1
        assert int(pred.header["sform_code"]) == int(ref.header["sform_code"]) == 1
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 3}
        for name in ("t1c", "t2f"):
            amap = nib.load(out / f"{case_id}-anomaly-{name}.nii.gz")
            assert amap.get_data_dtype() == np.float32 and amap.shape == ref.shape
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {"cases": 2, "succeeded": 2, "failed": 0}
    assert (report["state"], report["cases_total"], report["cases_done"]) == ("finished", 2, 2)
    assert report["stopped_by"] is None and report["stale_files_removed"] == []
    case = report["cases"][0]
    assert case["status"] == "ok" and case["error"] is None
    assert set(case["timings_s"]) == {
        "read",
        "normalise",
        "reconstruct",
        "anomaly",
        "threshold",
        "refine",
        "labels",
        "write",
    }
    assert report["refine"] == "none" and case["refine"] is None
    assert isinstance(case["anomaly_score"], float)
    assert set(case["voxels_per_label"]) == {"1", "2", "3"}
    # The bright lesion (about 3% of this brain, grown by the dilation) is left out of the
    # normalisation statistics, and nothing like the whole brain is.
    assert 0.02 < case["normalise_left_out"] < 0.2
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*tmp*"))
    assert not list(out.glob(".brats-goat*")), "no lock file or write probe left behind"


def test_ras_input_keeps_ras_geometry(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    folder = case_writer("RAS-1")
    for path in folder.glob("*.nii.gz"):
        img = nib.load(path)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::-1, ::-1], RAS), path)
    out = tmp_path / "out"
    assert run(predict_args(folder, out, tiny_weights)).exit_code == 0
    pred = nib.load(out / "RAS-1.nii.gz")
    np.testing.assert_allclose(pred.affine, RAS)
    assert nib.aff2axcodes(pred.affine) == ("R", "A", "S")


def test_cpu_output_is_deterministic(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    folder = case_writer("DET-1")
    runs = []
    for name in ("a", "b"):
        assert (
            run(predict_args(folder, tmp_path / name, tiny_weights, "--device", "cpu")).exit_code
            == 0
        )
        runs.append(np.asarray(nib.load(tmp_path / name / "DET-1.nii.gz").dataobj))
    np.testing.assert_array_equal(*runs)


def _break_missing(folder: Path) -> str:
    # Without t2f *and* t1c there is no residual to segment from.
    (folder / f"{folder.name}-t2f.nii.gz").unlink()
    (folder / f"{folder.name}-t1c.nii.gz").unlink()
    return "missing modality t1c, t2f"


def _break_grid(folder: Path) -> str:
    path = folder / f"{folder.name}-t2w.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine @ np.diag([2, 1, 1, 1])), path)
    return "different grid"


def _break_truncated(folder: Path) -> str:
    # One corrupt file is left out like a missing one: t1c and t2f both leave nothing.
    for modality in ("t1c", "t2f"):
        path = folder / f"{folder.name}-{modality}.nii.gz"
        path.write_bytes(path.read_bytes()[:500])
    return f"{folder.name}-t1c.nii.gz"


def _break_not_nifti(folder: Path) -> str:
    for modality in ("t1c", "t2f"):
        html = gzip.compress(b"<html>not found</html>")
        (folder / f"{folder.name}-{modality}.nii.gz").write_bytes(html)
    return "not a readable NIfTI"


def _break_zero(folder: Path) -> str:
    path = folder / f"{folder.name}-t1c.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.int16), img.affine), path)
    return "all zero"


def _break_4d(folder: Path) -> str:
    path = folder / f"{folder.name}-t2w.nii.gz"
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(np.stack([data] * 3, -1), img.affine), path)
    return "single 3D volume"


@pytest.mark.parametrize(
    "breaker",
    [_break_missing, _break_grid, _break_truncated, _break_not_nifti, _break_zero, _break_4d],
    ids=["missing", "grid", "truncated", "not-nifti", "all-zero", "4d"],
)
def test_bad_case_fails_alone(tmp_path: Path, case_writer, tiny_weights: Path, breaker) -> None:
    case_writer("GOOD-1")
    bad = case_writer("BAD-2")
    expected = breaker(bad)
    case_writer("GOOD-3")
    inp, out = tmp_path / "in", tmp_path / "out"
    before = tree_digest(inp)
    result = run(predict_args(inp, out, tiny_weights))
    assert result.exit_code == 1
    assert tree_digest(inp) == before
    report = json.loads((out / "report.json").read_text())
    status = {c["case_id"]: c for c in report["cases"]}
    assert status["GOOD-1"]["status"] == status["GOOD-3"]["status"] == "ok"
    assert status["BAD-2"]["status"] == "failed"
    assert "BAD-2" in status["BAD-2"]["error"] and expected in status["BAD-2"]["error"]
    assert "FAILED BAD-2" in result.output  # quiet mode still names the failure
    assert sorted(p.name for p in out.iterdir()) == [
        "GOOD-1.nii.gz",
        "GOOD-3.nii.gz",
        "report.json",
    ]


def test_a_case_with_one_truncated_file_is_segmented_from_the_others(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Issue 27: a truncated t2f failed the whole case; it is now segmented from its other
    sequences, as with a missing t2f, and the report names the file."""
    folder = case_writer("CUT-1")
    path = folder / "CUT-1-t2f.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out"
    result = run(predict_args(tmp_path / "in", out, tiny_weights))
    assert result.exit_code == 0, result.output
    case = json.loads((out / "report.json").read_text())["cases"][0]
    assert case["status"] == "ok" and case["modalities"] == ["t1c", "t1n", "t2w"]
    assert any(f"{path} is truncated or corrupt" in w for w in case["warnings"]), case
    assert (out / "CUT-1.nii.gz").is_file()


def test_nan_voxels_give_warning_not_failure(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    folder = case_writer("NAN-1", dtype=np.float32)
    path = folder / "NAN-1-t2f.nii.gz"
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[20, 20, 10] = np.nan
    data[21, 20, 10] = -np.inf
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    out = tmp_path / "out"
    assert run(predict_args(folder, out, tiny_weights)).exit_code == 0
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert any("NaN/Inf" in w and "NAN-1-t2f.nii.gz" in w for w in case["warnings"])


def test_duplicate_ids_both_fail(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("Case-1")
    case_writer("CASE-1")
    case_writer("Other-2")
    out = tmp_path / "out"
    result = run(predict_args(tmp_path / "in", out, tiny_weights))
    assert result.exit_code == 1
    report = json.loads((out / "report.json").read_text())
    failed = sorted(c["case_id"] for c in report["cases"] if c["status"] == "failed")
    assert failed == ["CASE-1", "Case-1"]
    assert (out / "Other-2.nii.gz").is_file()


def test_empty_input_is_usage_error(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run(predict_args(tmp_path / "empty", tmp_path / "out", tiny_weights))
    assert result.exit_code == 2 and "no cases found" in result.output
    assert "searched down to 3 folder levels below INPUT (INPUT/<ID>/ is level 1)" in (
        result.output
    )
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_usage_error(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    inp = case_writer("A-1").parent
    for out in (inp, inp / "results"):
        result = run(predict_args(inp, out, tiny_weights))
        assert result.exit_code == 2 and "inside" in result.output
    assert not (inp / "results").exists()


def test_unwritable_output_is_usage_error(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("A-1")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = run(predict_args(tmp_path / "in", blocker / "out", tiny_weights))
    assert result.exit_code == 2 and "not writable" in result.output


def test_unverified_weights_refused(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("A-1")
    bad = tmp_path / "badweights"
    bad.mkdir()
    manifest = json.loads((tiny_weights / "manifest.json").read_text())
    manifest["files"]["tiny.pt"]["sha256"] = "0" * 64
    (bad / "manifest.json").write_text(json.dumps(manifest))
    (bad / "tiny.pt").write_bytes((tiny_weights / "tiny.pt").read_bytes())
    result = run(predict_args(tmp_path / "in", tmp_path / "out", bad))
    assert result.exit_code == 2 and "sha256 mismatch" in result.output


def test_atomic_write_leaves_nothing_on_crash(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "x.nii.gz"

    def crash(image, filename):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", crash)
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    with pytest.raises(OSError, match="disk full"):
        write_nifti_atomic(img, target)
    assert list(tmp_path.iterdir()) == []


def test_help_lists_commands() -> None:
    result = run(["--help"])
    assert result.exit_code == 0
    for command in ("predict", "train"):
        assert command in result.output


def test_placeholder_policy_gives_every_case_a_file_and_exit_0(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """What the container does for the BraTS orchestrator: a failed case gets an empty label
    map in its input's geometry, the report goes elsewhere, the failure is still named."""
    case_writer("GOOD-1")
    bad = case_writer("BAD-2")
    _break_truncated(bad)
    inp, out, reports = tmp_path / "in", tmp_path / "out", tmp_path / "reports"
    args = ["--report-dir", reports, "--on-case-failure", "placeholder", "--print-report"]
    result = run(predict_args(inp, out, tiny_weights, *args))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["BAD-2.nii.gz", "GOOD-1.nii.gz"]
    assert sorted(p.name for p in reports.iterdir()) == ["report.json"]
    assert "FAILED BAD-2" in result.output and "1 of 2 cases FAILED: BAD-2" in result.output
    placeholder = nib.load(out / "BAD-2.nii.gz")
    ref = nib.load(bad / "BAD-2-t1n.nii.gz")
    assert placeholder.shape == ref.shape and placeholder.get_data_dtype() == np.uint8
    np.testing.assert_allclose(placeholder.affine, ref.affine)
    assert int(placeholder.header["sform_code"]) == int(ref.header["sform_code"])
    assert not np.asarray(placeholder.dataobj).any() and is_placeholder(out / "BAD-2.nii.gz")
    report = json.loads((reports / "report.json").read_text())
    status = {c["case_id"]: c for c in report["cases"]}
    assert status["BAD-2"]["status"] == "failed" and "BAD-2-t1c.nii.gz" in status["BAD-2"]["error"]
    assert status["BAD-2"]["placeholder"] == str(out / "BAD-2.nii.gz")
    assert report["summary"]["failed"] == 1
    printed = result.output.split(REPORT_BEGIN)[1].split(REPORT_END)[0]
    assert json.loads(printed) == report


def test_placeholder_policy_without_a_usable_header_gives_the_brats_grid(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """No input header usable: the placeholder is on the BraTS grid, said in a warning."""
    bad = case_writer("BAD-1")
    for path in bad.glob("BAD-1-t*.nii.gz"):
        path.write_bytes(b"not a NIfTI file")
    out = tmp_path / "out"
    args = ["--on-case-failure", "placeholder"]
    result = run(predict_args(tmp_path / "in", out, tiny_weights, *args))
    assert result.exit_code == 0
    assert nib.load(out / "BAD-1.nii.gz").shape == (240, 240, 155)
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert any("is on the BraTS grid" in w for w in case["warnings"])


def test_report_dir_and_no_report_file_exclude_each_other(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    case_writer("GOOD-1")
    args = ["--report-dir", tmp_path / "r", "--no-report-file"]
    result = run(predict_args(tmp_path / "in", tmp_path / "out", tiny_weights, *args))
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_report_dir_inside_input_is_usage_error(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    folder = case_writer("GOOD-1")
    args = ["--report-dir", folder / "reports"]
    result = run(predict_args(tmp_path / "in", tmp_path / "out", tiny_weights, *args))
    assert result.exit_code == 2 and "the report folder" in result.output
    assert not (folder / "reports").exists()


def test_runtime_openvino_writes_the_labels_torch_writes(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """``--runtime`` reaches the segmenter; OpenVINO's labels are torch's (the reference,
    in float32: OpenVINO runs float32 on this CPU)."""
    pytest.importorskip("openvino")
    case_writer("BraTS-GLI-00001-000")
    inp = tmp_path / "in"
    labels = {}
    for runtime in ("torch", "openvino"):
        out = tmp_path / runtime
        args = ("--device", "cpu", "--runtime", runtime, "--precision", "float32")
        result = run(predict_args(inp, out, tiny_weights, *args))
        assert result.exit_code == 0, result.output
        labels[runtime] = np.asarray(nib.load(out / "BraTS-GLI-00001-000.nii.gz").dataobj)
    np.testing.assert_array_equal(labels["openvino"], labels["torch"])


def test_unknown_runtime_is_usage_error(tmp_path: Path, tiny_weights: Path) -> None:
    result = run(predict_args(tmp_path, tmp_path / "out", tiny_weights, "--runtime", "tensorrt"))
    assert result.exit_code == 2 and "--runtime" in result.output


def test_precision_reaches_the_network_and_the_report(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """``--precision`` is what the forward pass runs in, and the report says which ran."""
    case_writer("BraTS-GLI-00001-000", seed=3)
    maps = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        args = ("--device", "cpu", "--precision", precision, "--save-maps")
        result = run(predict_args(tmp_path / "in", out, tiny_weights, *args))
        assert result.exit_code == 0, result.output
        report = json.loads((out / "report.json").read_text())
        assert report["precision"] == precision
        assert report["config"]["inference"]["precision"] == precision
        maps[precision] = nib.load(out / "BraTS-GLI-00001-000-anomaly-t2f.nii.gz").get_fdata()
    assert not np.array_equal(maps["float32"], maps["bfloat16"])
    np.testing.assert_allclose(maps["bfloat16"], maps["float32"], atol=0.1)
    result = run(predict_args(tmp_path / "in", tmp_path / "x", tiny_weights, "--precision", "fp8"))
    assert result.exit_code == 2 and "--precision" in result.output


def test_the_next_case_is_read_while_one_is_segmented(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run reads one case ahead on a thread (issue 18): the first while the segmenter
    is built, each next one once the case before it has been reconstructed (torch's
    threads need both cores until then); every case is still read once, by the real
    reader, and a case that cannot be read still fails alone."""
    import threading
    import time

    from brats_goat.run import predict as run_predict
    from brats_goat.run import read_ahead
    from brats_goat.segmenter import MViTAESegmenter, Segmenter

    for k in (1, 2, 3):
        case_writer(f"Case-{k}", seed=k)
    for modality in ("t1c", "t2f"):  # neither left: the case fails
        (tmp_path / "in" / "Case-2" / f"Case-2-{modality}.nii.gz").write_bytes(b"not a nifti")
    events: list[tuple[str, str, float]] = []
    real_read, real_segment = read_ahead.read_case, Segmenter.segment
    # No sleeps: the build and case 1's segmentation each wait (60 s at most) for the read
    # that must overlap them, so the order below holds however loaded the machine is; a read
    # that does not overlap leaves the wait to time out and the order assertion to fail.
    read_started = {case_id: threading.Event() for case_id in ("Case-1", "Case-2", "Case-3")}

    def read(case, atol):
        events.append(("read", case.case_id, time.perf_counter()))
        events.append(("thread", threading.current_thread().name, 0.0))
        read_started[case.case_id].set()
        return real_read(case, atol)

    def segment(self, volumes, *args):
        out = real_segment(self, volumes, *args)
        if volumes.case_id == "Case-1":
            read_started["Case-2"].wait(timeout=60)
        events.append(("segmented", "", time.perf_counter()))
        return out

    real_reconstruct = MViTAESegmenter.reconstruct

    def reconstruct(self, *args, **kwargs):
        out = real_reconstruct(self, *args, **kwargs)
        events.append(("reconstructed", "", time.perf_counter()))
        return out

    real_make = run_predict.make_segmenter

    def make_segmenter(*args, **kwargs):
        # A segmenter that takes a while to build (the OpenVINO export): here until case 1
        # has started to be read beside it.
        read_started["Case-1"].wait(timeout=60)
        out = real_make(*args, **kwargs)
        events.append(("built", "", time.perf_counter()))
        return out

    monkeypatch.setattr(read_ahead, "read_case", read)
    monkeypatch.setattr(run_predict, "make_segmenter", make_segmenter)
    monkeypatch.setattr(Segmenter, "segment", segment)
    monkeypatch.setattr(MViTAESegmenter, "reconstruct", reconstruct)
    inp, out = tmp_path / "in", tmp_path / "out"
    report = run_predict.predict(inp, out, weights=tiny_weights, quiet=True)
    status = {c.case_id: c.status for c in report.cases}
    assert status == {"Case-1": "ok", "Case-2": "failed", "Case-3": "ok"}
    reads = [e for e in events if e[0] == "read"]
    assert [r[1] for r in reads] == ["Case-1", "Case-2", "Case-3"]
    assert {e[1] for e in events if e[0] == "thread"} != {threading.main_thread().name}
    built = next(e[2] for e in events if e[0] == "built")
    assert reads[0][2] < built, "case 1 was not read while the segmenter was built"
    first_done = next(e[2] for e in events if e[0] == "segmented")
    assert reads[1][2] < first_done, "case 2 was not read while case 1 was segmented"
    first_reconstructed = next(e[2] for e in events if e[0] == "reconstructed")
    assert reads[1][2] > first_reconstructed, "case 2 was read beside case 1's network"
    # Case 2 failed at its read, before any reconstruction: case 3 is read all the same.


def _labels_are_those_of_each_case_alone(inp: Path, out: Path, weights: Path) -> None:
    """Every label map a run wrote is what ``Segmenter.segment`` gives its case in memory,
    read on its own and with nothing ahead of it."""
    from brats_goat.io.read import load_case
    from brats_goat.run.predict import find_cases
    from brats_goat.segmenter import make_segmenter

    segmenter = make_segmenter(weights=weights)
    for case in find_cases(inp):
        volumes = load_case(case, allow_missing=True)
        alone = volumes.to_stored(segmenter.segment(volumes).labels)
        written = np.asarray(nib.load(out / f"{case.case_id}.nii.gz").dataobj)
        np.testing.assert_array_equal(written, alone)


def test_each_next_case_is_normalised_on_the_read_thread(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each case after the first is normalised on the read thread once the case before it
    has been reconstructed (issue 18), into the labels a case segmented on its own gets; a
    case whose normalisation fails there fails alone, in its normalise stage."""
    import threading
    import time

    from brats_goat.io.read import CaseError
    from brats_goat.run import predict as run_predict
    from brats_goat.segmenter import MViTAESegmenter, Segmenter

    for k in (1, 2, 3):
        case_writer(f"Case-{k}", seed=k)
    events: list[tuple[str, str, str, float]] = []
    real_normalise, real_reconstruct = Segmenter.normalise, MViTAESegmenter.reconstruct

    def normalise(self, volumes):
        events.append(("normalise", volumes.case_id, threading.current_thread().name, 0.0))
        if volumes.case_id == "Case-2" and fail:
            raise CaseError(f"case {volumes.case_id}: normalisation refused")
        out = real_normalise(self, volumes)
        events.append(("normalised", volumes.case_id, "", time.perf_counter()))
        return out

    def reconstruct(self, *args, **kwargs):
        out = real_reconstruct(self, *args, **kwargs)
        events.append(("reconstructed", "", "", time.perf_counter()))
        return out

    monkeypatch.setattr(Segmenter, "normalise", normalise)
    monkeypatch.setattr(MViTAESegmenter, "reconstruct", reconstruct)
    fail = False
    inp, out = tmp_path / "in", tmp_path / "out"
    report = run_predict.predict(inp, out, weights=tiny_weights, quiet=True)
    assert [c.status for c in report.cases] == ["ok"] * 3
    threads = {e[1]: e[2] for e in events if e[0] == "normalise"}
    assert threads["Case-1"] == threading.main_thread().name
    assert threads["Case-2"].startswith("brats-goat-read")
    assert threads["Case-3"].startswith("brats-goat-read")
    done = [e for e in events if e[0] in ("normalised", "reconstructed")]
    # Case 2 is normalised between case 1's reconstruction and its own.
    order = ["normalised", "reconstructed"] * 2
    assert [e[0] for e in done[:4]] == order
    _labels_are_those_of_each_case_alone(inp, out, tiny_weights)

    fail, events[:] = True, []
    report = run_predict.predict(inp, tmp_path / "out2", weights=tiny_weights, quiet=True)
    by_id = {c.case_id: c for c in report.cases}
    assert by_id["Case-2"].status == "failed"
    assert by_id["Case-2"].error == "case Case-2: normalisation refused"
    assert list(by_id["Case-2"].timings_s) == ["read", "normalise"]
    assert by_id["Case-1"].status == by_id["Case-3"].status == "ok"
    assert {e[1]: e[2] for e in events if e[0] == "normalise"}["Case-2"].startswith(
        "brats-goat-read"
    )


def test_with_refinement_the_next_case_is_normalised_after_it(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """With a SAM-family refinement the next case is read once the reconstruction has
    ended, but normalised only once the refinement has (both cores and the peak memory
    belong to SAM until then); without one, both start after the reconstruction."""
    from brats_goat.run import predict as run_predict
    from brats_goat.segmenter import make_segmenter

    for k in (1, 2):
        case_writer(f"Case-{k}", seed=k)
    cases = run_predict.find_cases(tmp_path / "in")
    segmenter = make_segmenter(weights=tiny_weights)
    for refiner in (None, object()):  # any refiner: only whether one runs matters here
        segmenter.refiner = refiner
        ahead = run_predict.ReadAhead(cases, 1e-3)
        after = ahead.after_stages(1, segmenter)
        after.pop("reconstruct")()
        assert 1 in ahead.reads and (1 in ahead.norms) == (refiner is None)
        if refiner is not None:
            after.pop("refine")()
        assert not after
        reading, normalising = ahead.take(1)
        assert reading.result().case_id == "Case-2"
        assert normalising is not None and normalising.result().brain.any()
        ahead.close()


def test_a_case_frees_its_images_once_normalised_unless_a_qc_picture_needs_them(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The images are freed when the normalise stage ends (nothing after it reads them; a
    case's peak memory falls by their 144 MB), and the labels are those of a case that kept
    them; a QC picture, drawn from them, keeps them (tests/run/test_qc.py)."""
    from brats_goat.io.read import CaseVolumes
    from brats_goat.run import predict as run_predict

    for k in (1, 2):
        case_writer(f"Case-{k}", seed=k)
    freed: list[tuple[str, str]] = []
    real_release = CaseVolumes.release_images

    def release_images(self) -> None:
        real_release(self)
        freed.append((self.case_id, ",".join(self.present)))
        assert all(a.size == 0 for a in self.arrays.values())

    monkeypatch.setattr(CaseVolumes, "release_images", release_images)
    inp, out = tmp_path / "in", tmp_path / "out"
    report = run_predict.predict(inp, out, weights=tiny_weights, quiet=True)
    assert [c.status for c in report.cases] == ["ok", "ok"]
    assert freed == [("Case-1", "t1c,t1n,t2f,t2w"), ("Case-2", "t1c,t1n,t2f,t2w")]
    _labels_are_those_of_each_case_alone(inp, out, tiny_weights)
