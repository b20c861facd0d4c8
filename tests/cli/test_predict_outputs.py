"""`brats-goat predict`: what a run leaves in OUTPUT for each case (issue 27): no label map
of an earlier run beside a failed case, a case ID from the folder however INPUT is named,
output names that fit the file system and never fall on another case's file."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.io.write import LABELS_DESCRIP, temp_key
from brats_goat.run.placeholder import PLACEHOLDER_DESCRIP, is_placeholder


def run(args: list[object]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def predict_args(inp: Path, out: Path, weights: Path, *extra: object) -> list[object]:
    return ["predict", inp, out, "--weights", weights, "--quiet", *extra]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:400])


@pytest.mark.parametrize("policy", ["exit-1", "placeholder"])
def test_a_failed_rerun_leaves_no_label_map_of_the_earlier_run(
    tmp_path: Path, case_writer, tiny_weights: Path, policy: str
) -> None:
    """Issue 27, item 3: run 2 failed S but left run 1's S.nii.gz, which evaluate scored."""
    folder = case_writer("S-1")
    out = tmp_path / "out"
    assert run(predict_args(folder, out, tiny_weights, "--save-maps")).exit_code == 0
    assert (out / "S-1.nii.gz").is_file() and (out / "S-1-anomaly-t2f.nii.gz").is_file()
    for path in folder.glob("S-1-t*.nii.gz"):
        truncate(path)
    result = run(predict_args(folder, out, tiny_weights, "--on-case-failure", policy))
    assert result.exit_code == (1 if policy == "exit-1" else 0)
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert case["status"] == "failed"
    assert not list(out.glob("S-1-anomaly-*")), "the earlier run's maps are gone too"
    if policy == "exit-1":
        assert not (out / "S-1.nii.gz").exists()
    else:
        assert is_placeholder(out / "S-1.nii.gz")
    assert any("removed the output of an earlier run" in w for w in case["warnings"])


@pytest.mark.parametrize("given", [".", "sub/.."])
def test_a_case_folder_given_as_dot_is_named_after_the_folder(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Issue 27, item 4: ``cd CASE && brats-goat predict . OUT`` wrote the hidden ``OUT/.nii.gz``
    under an empty case ID."""
    folder = case_writer("P-7")
    (folder / "sub").mkdir()
    monkeypatch.chdir(folder)
    out = tmp_path / "out"
    result = run(predict_args(Path(given), out, tiny_weights))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["P-7.nii.gz", "report.json"]
    (case,) = json.loads((out / "report.json").read_text())["cases"]
    assert case["case_id"] == "P-7"


def test_a_240_character_case_id_is_written(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Issue 27, item 14: the output name was legal, its temporary name (``.<NAME>.<8>.tmp
    .nii.gz``) was not: the case failed after the whole pipeline."""
    case_id = "L" * 240
    case_writer(case_id)
    out = tmp_path / "out"
    result = run(predict_args(tmp_path / "in", out, tiny_weights))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{case_id}.nii.gz", "report.json"]


def test_an_output_name_too_long_fails_its_case_before_the_pipeline(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """With --save-maps, ``<ID>-anomaly-t2f.nii.gz`` of a 240-character ID is 259 bytes: the
    case fails at once, saying what to do, and the other case is written."""
    case_id = "L" * 240
    case_writer(case_id)
    case_writer("S-1")
    out = tmp_path / "out"
    result = run(predict_args(tmp_path / "in", out, tiny_weights, "--save-maps"))
    assert result.exit_code == 1
    cases = {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}
    assert cases["S-1"]["status"] == "ok"
    long = cases[case_id]
    assert long["status"] == "failed" and "read" not in long["timings_s"]
    assert long["error"] == (
        f"case {case_id}: its output file name {case_id}-anomaly-t2f.nii.gz would be 259 "
        "bytes long, more than the 255 a file name may have; rename the case folder (and "
        "files) to a shorter case ID, or run without --save-maps"
    )
    assert not long["warnings"], "nothing to remove, no noise about it"


def test_a_shard_removes_the_stale_temporary_file_of_its_long_case(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """A long target's temporary file is named by a digest; a shard still knows it for its
    own (and leaves the other shard's)."""
    own_id, other_id = "A" * 240, "B" * 240
    case_writer(own_id)
    case_writer(other_id)
    out = tmp_path / "out"
    out.mkdir()
    own = out / f".{temp_key(own_id + '.nii.gz')}.aaaaaaaa.tmp.nii.gz"
    other = out / f".{temp_key(other_id + '.nii.gz')}.bbbbbbbb.tmp.nii.gz"
    own.write_bytes(b"")
    other.write_bytes(b"")
    result = run(predict_args(tmp_path / "in", out, tiny_weights, "--shard", "1/2"))
    assert result.exit_code == 0, result.output
    assert not own.exists() and other.exists()
    report = json.loads((out / "report-shard-1-of-2.json").read_text())
    assert report["stale_files_removed"] == [str(own)]


def test_a_case_named_like_another_cases_map_is_refused_under_save_maps(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Issue 27, item 15: ``X-anomaly-t2f.nii.gz`` is case X's t2f map and the label map of
    case ``X-anomaly-t2f``: one overwrote the other. Refused before anything is written,
    also when the two are in different shards."""
    case_writer("X-1")
    other = case_writer("X-1-anomaly-t2f")
    out = tmp_path / "out"
    for extra in ((), ("--shard", "2/2")):
        result = run(predict_args(tmp_path / "in", out, tiny_weights, "--save-maps", *extra))
        assert result.exit_code == 2
        assert (
            f"case X-1-anomaly-t2f ({other}): its label map X-1-anomaly-t2f.nii.gz is also the "
            "t2f anomaly map of case X-1"
        ) in result.output
        assert "rename the case folder (and files) of one, or run without --save-maps" in (
            result.output
        )
        assert not out.exists()


def test_a_failed_case_never_removes_another_cases_label_map(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Without --save-maps both IDs are fine; X-1's failure removes X-1's earlier maps but
    not ``X-1-anomaly-t2f.nii.gz``, the label map the other shard wrote."""
    broken = case_writer("X-1")
    case_writer("X-1-anomaly-t2f")
    out = tmp_path / "out"
    assert run(predict_args(tmp_path / "in", out, tiny_weights, "--shard", "2/2")).exit_code == 0
    for path in broken.glob("X-1-t*.nii.gz"):
        truncate(path)
    assert run(predict_args(tmp_path / "in", out, tiny_weights, "--shard", "1/2")).exit_code == 1
    assert (out / "X-1-anomaly-t2f.nii.gz").is_file()


def test_the_label_map_does_not_copy_the_inputs_window_intent_or_description(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """Issue 27, item 12: with the input's cal_max 3000 a viewer showed labels 0-3 black,
    and an input described as a placeholder made a real segmentation read as one."""
    folder = case_writer("H-1")
    for path in folder.glob("H-1-t*.nii.gz"):
        image = nib.load(path)
        header = image.header.copy()
        header["cal_min"], header["cal_max"] = 0, 3000
        header.set_intent("estimate", (), name="t-map")
        header["descrip"] = PLACEHOLDER_DESCRIP.encode()
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, header), path)
    out = tmp_path / "out"
    assert run(predict_args(folder, out, tiny_weights, "--save-maps")).exit_code == 0
    labels = nib.load(out / "H-1.nii.gz").header
    assert (float(labels["cal_min"]), float(labels["cal_max"])) == (0.0, 3.0)
    assert labels.get_intent() == ("none", (), "")
    assert labels["descrip"].item().decode() == LABELS_DESCRIP
    assert not is_placeholder(out / "H-1.nii.gz")
    anomaly = nib.load(out / "H-1-anomaly-t2f.nii.gz").header
    assert (float(anomaly["cal_min"]), float(anomaly["cal_max"])) == (0.0, 0.0)
    assert anomaly.get_intent()[0] == "none" and anomaly["descrip"].item() == b""


def test_label_maps_of_cases_no_longer_in_input_are_reported_not_removed(
    tmp_path: Path, case_writer
) -> None:
    """Probe round 3, F7: B-2 removed from INPUT after a run left its label map; the next
    run's report did not mention it and evaluate scored it. It is kept (it may be the
    user's), named in the report's ``other_label_maps`` and in one warning on stderr."""
    for case_id in ("A-1", "B-2"):
        case_writer(case_id)
    inp, out = tmp_path / "in", tmp_path / "out"
    intensity = ("--method", "intensity", "--refine", "none", "--quiet")
    assert run(["predict", inp, out, *intensity]).exit_code == 0
    assert json.loads((out / "report.json").read_text())["other_label_maps"] is None
    for path in (inp / "B-2").iterdir():
        path.unlink()
    (inp / "B-2").rmdir()
    result = run(["predict", inp, out, *intensity])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [c["case_id"] for c in report["cases"]] == ["A-1"]
    assert report["other_label_maps"] == {"count": 1, "first": ["B-2.nii.gz"]}
    assert (out / "B-2.nii.gz").is_file()
    (line,) = [line for line in result.output.splitlines() if "not in this run" in line]
    assert "label maps of 1 case(s) not in this run's INPUT (B-2.nii.gz)" in line
    assert "remove them before scoring" in line


def test_a_shard_does_not_report_the_other_shards_label_maps(tmp_path: Path, case_writer) -> None:
    """The other shards' cases are not in a shard's run but are in INPUT: their maps are
    this run's, not other label maps."""
    for case_id in ("A-1", "B-2", "C-3"):
        case_writer(case_id)
    inp, out = tmp_path / "in", tmp_path / "out"
    intensity = ("--method", "intensity", "--refine", "none", "--quiet")
    for shard in ("1/2", "2/2", "1/2"):
        result = run(["predict", inp, out, *intensity, "--shard", shard])
        assert result.exit_code == 0 and "not in this run" not in result.output
    report = json.loads((out / "report-shard-1-of-2.json").read_text())
    assert report["other_label_maps"] is None
