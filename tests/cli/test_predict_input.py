"""`brats-goat predict` on hostile input layouts and misuse (issue 17): every case is either
processed or refused with a message that names it, and a usage error leaves nothing behind.

The intensity method (no weights) keeps these runs fast; what they test is the same for both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.model.checkpoint import register_in_manifest, sha256_file
from brats_goat.model.manifest import WeightsError
from brats_goat.run.predict import predict as run_predict
from tests.conftest import tree_digest, write_case
from tests.unprivileged import ROOT, brats_goat, requires_file_modes

INTENSITY = ("--method", "intensity", "--refine", "none", "--quiet")


def run(*args: str | Path):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def predict(inp: Path, out: Path, *extra: str | Path):
    return run("predict", inp, out, *INTENSITY, *extra)


def report(out: Path) -> dict[str, dict]:
    return {c["case_id"]: c for c in json.loads((out / "report.json").read_text())["cases"]}


def test_stray_files_in_input_are_a_usage_error_naming_them(tmp_path: Path) -> None:
    """Item 1: a stray set at the root used to be run as the only case (exit 0, 1/1 ok)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(inp, "B-2")
    stray = write_case(tmp_path, "STRAY")
    for path in stray.iterdir():
        shutil.copy(path, inp / path.name)
    before = tree_digest(inp)
    result = predict(inp, out)
    assert result.exit_code == 2
    assert "STRAY-t1n.nii.gz" in result.output and "A-1, B-2" in result.output
    assert not out.exists(), "a usage error must not leave OUTPUT behind"
    assert tree_digest(inp) == before


def test_nested_case_next_to_case_folders_is_segmented(tmp_path: Path) -> None:
    """Item 2: the case one folder deeper used to be skipped with exit 0."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    write_case(inp / "more", "B-2")
    result = predict(inp, out)
    assert result.exit_code == 0, result.output
    cases = report(out)
    assert sorted(cases) == ["A-1", "B-2"]
    assert cases["B-2"]["input"] == str(inp / "more" / "B-2")
    assert (out / "B-2.nii.gz").is_file()


def test_folder_of_only_nested_cases_is_segmented(tmp_path: Path) -> None:
    """Item 2: this used to end in "no cases found"."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp / "GLI", "G-1")
    write_case(inp / "MET", "M-1")
    assert predict(inp, out).exit_code == 0
    assert sorted(report(out)) == ["G-1", "M-1"]


def test_dangling_modality_link_fails_its_case(tmp_path: Path) -> None:
    """Item 9: it used to pass as an absent modality (exit 0, a warning only)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "GOOD-1")
    bad = write_case(inp, "LINK-2")
    link = bad / "LINK-2-t2f.nii.gz"
    link.unlink()
    link.symlink_to(tmp_path / "unmounted" / "LINK-2-t2f.nii.gz")
    result = predict(inp, out)
    assert result.exit_code == 1
    cases = report(out)
    assert cases["GOOD-1"]["status"] == "ok" and cases["LINK-2"]["status"] == "failed"
    assert str(link) in cases["LINK-2"]["error"] and "dangling" in cases["LINK-2"]["error"]


def test_single_slice_case_fails_alone(tmp_path: Path) -> None:
    """Item 13: a single slice passed as "ok"."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "GOOD-1")
    write_case(inp, "SLICE-2", shape=(48, 48, 1))
    assert predict(inp, out).exit_code == 1
    cases = report(out)
    assert cases["GOOD-1"]["status"] == "ok"
    assert (
        "(48, 48, 1)" in cases["SLICE-2"]["error"]
        and "voxels per axis" in cases["SLICE-2"]["error"]
    )
    assert not (out / "SLICE-2.nii.gz").exists()


def test_intensity_method_warns_that_weights_are_ignored(tmp_path: Path) -> None:
    """Item 13: a garbage --weights file with --method intensity gave no word."""
    write_case(tmp_path / "in", "A-1")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    result = predict(tmp_path / "in", tmp_path / "out", "--weights", garbage)
    assert result.exit_code == 0
    assert f"--weights {garbage} is ignored: --method intensity uses no weights" in result.stderr


@pytest.mark.parametrize("problem", ["no-cases", "bad-weights", "stray"])
def test_usage_error_leaves_no_output_or_report_folder(
    tmp_path: Path, tiny_weights: Path, problem: str
) -> None:
    """Item 13: a usage error used to leave an empty OUTPUT (and its parents) behind."""
    inp = tmp_path / "in"
    inp.mkdir()
    weights = tiny_weights
    if problem != "no-cases":
        write_case(inp, "A-1")
    if problem == "bad-weights":
        weights = tmp_path / "w"
        weights.mkdir()
        (weights / "manifest.json").write_text("{not json")
    if problem == "stray":
        shutil.copy(inp / "A-1" / "A-1-t1c.nii.gz", inp / "x-t1c.nii.gz")
    out, reports = tmp_path / "new" / "out", tmp_path / "reports" / "r"
    args = ["predict", inp, out, "--weights", weights, "--report-dir", reports, "--quiet"]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists() and not (tmp_path / "reports").exists()


def test_usage_error_keeps_an_output_folder_that_existed(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    assert predict(tmp_path / "in", out).exit_code == 2
    assert out.is_dir()


# ------------------------------------------------------- weights that pass the sha256 check


def _registered_copy(tiny_weights: Path, folder: Path, edit) -> Path:
    """The tiny checkpoint with ``edit`` applied to its payload, registered with the sha256 of
    the edited file, so the checksum check passes and the content is what is wrong."""
    folder.mkdir()
    payload = torch.load(tiny_weights / "tiny.pt", weights_only=True)
    edit(payload)
    path = folder / "edited.pt"
    torch.save(payload, path)
    register_in_manifest(path, sha256_file(path), {"command": "test"}, default=True)
    return folder


def _drop_tensors(payload: dict) -> None:
    for key in list(payload["state_dict"])[:3]:
        del payload["state_dict"][key]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p.pop("state_dict"), "checkpoint entry 'state_dict' is missing"),
        (lambda p: p.pop("model_config"), "checkpoint entry 'model_config' is missing"),
        (_drop_tensors, "3 tensor(s) missing"),
        (lambda p: p["model_config"].update(patch_size=0), "model_config describes no valid model"),
        (lambda p: p.update(info=[1]), "checkpoint entry 'info' cannot be read"),
    ],
    ids=["no-state-dict", "no-model-config", "missing-tensors", "bad-config", "bad-info"],
)
def test_checksum_valid_but_incomplete_checkpoint_is_a_usage_error(
    tmp_path: Path, tiny_weights: Path, edit, expected: str
) -> None:
    """Item 11: these used to crash with a KeyError traceback (exit 1)."""
    write_case(tmp_path / "in", "A-1")
    weights = _registered_copy(tiny_weights, tmp_path / "w", edit)
    result = run("predict", tmp_path / "in", tmp_path / "out", "--weights", weights, "--quiet")
    assert result.exit_code == 2, result.output
    assert str(weights / "edited.pt") in result.output and expected in result.output
    assert not (tmp_path / "out").exists()


def test_checkpoint_saved_by_the_project_still_loads(tmp_path: Path, tiny_weights: Path) -> None:
    """The control for the edits above: the same copy without an edit runs."""
    write_case(tmp_path / "in", "A-1")
    weights = _registered_copy(tiny_weights, tmp_path / "w", lambda p: None)
    result = run("predict", tmp_path / "in", tmp_path / "out", "--weights", weights, "--quiet")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("{truncated", "is not a readable JSON file"),
        ("[]", "expected a JSON object, got list"),
        ('{"default": "tiny.pt"}', "field 'files' must be an object"),
        ('{"default": "tiny.pt", "files": {"tiny.pt": {}}}', "'files.tiny.pt.sha256' must be"),
        ('{"default": "tiny.pt", "files": {"tiny.pt": "abc"}}', "'files.tiny.pt.sha256' must be"),
        ('{"default": ["tiny.pt"], "files": {}}', "field 'default' must be the name"),
        ('{"default": "../tiny.pt", "files": {}}', "field 'default' must be the name"),
    ],
    ids=["not-json", "list", "no-files", "no-sha", "entry-string", "default-list", "default-path"],
)
def test_malformed_manifest_is_a_usage_error(
    tmp_path: Path, tiny_weights: Path, manifest: str, expected: str
) -> None:
    """Item 11: a malformed manifest used to crash with a traceback (exit 1)."""
    write_case(tmp_path / "in", "A-1")
    weights = tmp_path / "w"
    weights.mkdir()
    shutil.copy(tiny_weights / "tiny.pt", weights / "tiny.pt")
    (weights / "manifest.json").write_text(manifest)
    result = run("predict", tmp_path / "in", tmp_path / "out", "--weights", weights, "--quiet")
    assert result.exit_code == 2, result.output
    assert str(weights / "manifest.json") in result.output and expected in result.output


# ------------------------------------------------------------------- file permissions


@requires_file_modes
def test_unreadable_case_folder_fails_alone(tmp_path: Path) -> None:
    """Item 10: one unreadable case folder aborted the run with a traceback and no report."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "GOOD-1")
    locked = write_case(inp, "LOCKED-2")
    locked.chmod(0)
    try:
        result = brats_goat("predict", inp, out, *INTENSITY)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    cases = report(out)
    assert cases["GOOD-1"]["status"] == "ok"
    assert cases["LOCKED-2"]["status"] == "failed"
    assert "permission denied" in cases["LOCKED-2"]["error"]
    assert str(locked) in cases["LOCKED-2"]["error"]


@requires_file_modes
def test_unreadable_modality_file_fails_its_case_naming_permission(tmp_path: Path) -> None:
    """Item 10: it was reported as "not a readable NIfTI image"."""
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "GOOD-1")
    path = write_case(inp, "LOCKED-2") / "LOCKED-2-t1c.nii.gz"
    path.chmod(0)
    try:
        result = brats_goat("predict", inp, out, *INTENSITY)
    finally:
        path.chmod(0o644)
    assert result.returncode == 1, result.stderr
    error = report(out)["LOCKED-2"]["error"]
    assert str(path) in error and "permission denied" in error


@requires_file_modes
def test_unreadable_input_is_a_usage_error(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_case(inp, "A-1")
    inp.chmod(0)
    try:
        result = brats_goat("predict", inp, out, *INTENSITY)
    finally:
        inp.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert f"'{inp}' is not readable" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_train_on_an_ambiguous_layout_is_a_usage_error(tmp_path: Path) -> None:
    """The same discovery rule in every command, with a usage error and not a traceback."""
    inp = tmp_path / "in"
    write_case(inp, "A-1")
    shutil.copy(inp / "A-1" / "A-1-t2f.nii.gz", inp / "loose-t2f.nii.gz")
    result = run("train", inp, "-o", tmp_path / "model.pt", "--quiet")
    assert result.exit_code == 2
    assert "loose-t2f.nii.gz" in result.output and "A-1" in result.output


# ------------------------------------------------- a usage error creates nothing to clean up


def _tampered_weights(tiny_weights: Path, folder: Path) -> Path:
    """A copy of the tiny weights folder whose checkpoint no longer matches its sha256."""
    shutil.copytree(tiny_weights, folder)
    with open(folder / "tiny.pt", "ab") as fh:
        fh.write(b"tampered")
    return folder


def test_bad_weights_create_no_output_folder_in_a_real_run(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """The whole CLI in its own process: the weights are refused before OUTPUT exists, so
    there is no folder and no lock file, not even for a moment to be cleaned up after."""
    case_writer("A-1")
    weights = _tampered_weights(tiny_weights, tmp_path / "w")
    out = tmp_path / "new" / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "brats_goat.cli", "predict", tmp_path / "in", out]
    args += ["--weights", weights, "--refine", "none", "--quiet"]
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()


def test_bad_weights_never_create_or_lock_output(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    """The library alone (no CLI clean-up): nothing is created before the weights load, and
    an OUTPUT that existed is not locked (no lock file)."""
    case_writer("A-1")
    weights = _tampered_weights(tiny_weights, tmp_path / "w")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        run_predict(tmp_path / "in", tmp_path / "out", weights=weights, report_dir=tmp_path / "r")
    assert not (tmp_path / "out").exists() and not (tmp_path / "r").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        run_predict(tmp_path / "in", tmp_path / "out", weights=weights)
    assert list((tmp_path / "out").iterdir()) == []


def test_nnunet_style_input_is_a_usage_error_with_the_conversion(tmp_path: Path) -> None:
    """Issue 27: ``<ID>_0000.nii.gz`` ... ``_0003`` in INPUT ended in "no cases found",
    which says nothing of the files that were there; now exit 2 with the conversion, and
    nothing written."""
    inp, out = tmp_path / "in", tmp_path / "out"
    case = write_case(tmp_path / "src", "P1")
    inp.mkdir()
    for i, modality in enumerate(("t1n", "t1c", "t2w", "t2f")):
        shutil.copy(case / f"P1-{modality}.nii.gz", inp / f"P1_{i:04d}.nii.gz")
    result = predict(inp, out)
    assert result.exit_code == 2
    assert "nnU-Net-style channel files (P1_0000.nii.gz ..., 1 case(s))" in result.output
    assert 'mv "${id}_0003.nii.gz" "$id/$id-t2f.nii.gz"' in result.output
    assert not out.exists()


def test_nnunet_input_with_dataset_json_gives_the_case_folder_result(tmp_path: Path) -> None:
    """Issue 27: with nnU-Net's dataset.json (here the Decathlon's order, FLAIR first)
    beside ``imagesTs``, the channel files are read in its order: the label map is that of
    the same case in a case folder, and the report says which order was used."""
    case = write_case(tmp_path / "folders", "P1")
    inp = tmp_path / "Dataset001_BrainTumour" / "imagesTs"
    inp.mkdir(parents=True)
    names = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    (inp.parent / "dataset.json").write_text(json.dumps({"channel_names": names}))
    for i, modality in enumerate(("t2f", "t1n", "t1c", "t2w")):
        shutil.copy(case / f"P1-{modality}.nii.gz", inp / f"P1_{i:04d}.nii.gz")
    assert predict(case, tmp_path / "want").exit_code == 0
    result = predict(inp, tmp_path / "out")
    assert result.exit_code == 0, result.output
    got, want = (nib.load(tmp_path / o / "P1.nii.gz") for o in ("out", "want"))
    assert np.asarray(want.dataobj).any()
    np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(want.dataobj))
    (note,) = [w for w in report(tmp_path / "out")["P1"]["warnings"] if "nnU-Net" in w]
    assert note.endswith("gives: 0000 t2f, 0001 t1n, 0002 t1c, 0003 t2w")
