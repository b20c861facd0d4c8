"""Hostile-input probes of brats-goat predict, evaluate and merge-reports (issue 17).

PYTHONPATH=$PWD python experiments/hostile_probes.py [NAME ...]: runs the CLI from PYTHONPATH in
real subprocesses, one JSON line per probe (flags: a traceback, a changed input, a leftover
file)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

# The checkout whose CLI runs: the first PYTHONPATH entry, else the one holding this file.
sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(":")[0] or str(Path(__file__).parents[1]))
from brats_goat.io.grid import brats_affine
from tests.conftest import rewrite_header_raw, synthetic_volumes, write_case

PY = sys.executable
BASE = ["--method", "intensity", "--refine", "none", "--quiet"]


def digest(root: Path) -> dict:
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_symlink():
            out[str(p.relative_to(root))] = "link->" + os.readlink(p)
    return out


def cli(*args, timeout=300):
    p = subprocess.run(
        [PY, "-m", "brats_goat.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout + p.stderr


def save(data, path, affine=None, dtype=None, **hdr):
    aff = brats_affine() if affine is None else affine
    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), aff)
    img.set_qform(aff, 1)
    img.set_sform(aff, 1)
    nib.save(img, str(path))
    return path


def replace_image(path: Path, make) -> None:
    """Rewrite ``path`` as the image ``make(nib.load(path))`` returns."""
    new = make(nib.load(path))
    path.unlink()
    nib.save(new, path)


def qform_moved(img):
    """The image with its qform moved 30 mm from its sform (both valid)."""
    q = img.affine.copy()
    q[:3, 3] += 30
    new = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)
    new.set_sform(img.affine, 1)
    new.set_qform(q, 1)
    return new


def shift_origin(path: Path, mm: float) -> None:
    """Rewrite ``path`` with its origin moved ``mm`` along x: another grid."""
    img = nib.load(path)
    affine = img.affine.copy()
    affine[0, 3] += mm
    data = np.asarray(img.dataobj)
    path.unlink()
    save(data, path, affine)


def mod(folder: Path, m: str) -> Path:
    return next(folder.glob(f"*-{m}.nii*"))


def rewrite(folder, m, fn, dtype=None, ext=None):
    p = mod(folder, m)
    img = nib.load(str(p))
    data = np.asarray(img.dataobj)
    new = fn(data)
    target = p if ext is None else p.with_name(p.name.split(".")[0] + ext)
    p.unlink()
    save(new, target, img.affine, dtype)


PROBES = {}


def probe(f):
    PROBES[f.__name__] = f
    return f


# ---- each probe: (tmp) -> (args list for cli, inp, out, what is correct)
@probe
def p01_4d_modality(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t2f", lambda d: np.stack([d, d, d], -1))
    return ["predict", t / "in", t / "out"], "case fails: 4D"


@probe
def p02_2d_modality(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t1n", lambda d: d[:, :, 10])
    return ["predict", t / "in", t / "out"], "case fails: 2D"


@probe
def p03_shapes_differ(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t1n", lambda d: d[:, :, :18])
    return ["predict", t / "in", t / "out"], "case fails: grids"


@probe
def p04_affines_differ(t):
    c = write_case(t / "in", "C-1")
    shift_origin(mod(c, "t2w"), 7)
    return ["predict", t / "in", t / "out"], "case fails: grids"


@probe
def p05_nan_inf_voxels(t):
    c = write_case(t / "in", "C-1", dtype=np.float32)

    def f(d):
        d = d.astype(np.float32).copy()
        d[20, 20, 10] = np.nan
        d[21, 20, 10] = np.inf
        d[22, 20, 10] = -np.inf
        return d

    rewrite(c, "t2f", f, np.float32)
    return ["predict", t / "in", t / "out"], "ok with a warning"


@probe
def p06_all_inf(t):
    c = write_case(t / "in", "C-1", dtype=np.float32)
    rewrite(c, "t1c", lambda d: np.full(d.shape, np.inf, np.float32), np.float32)
    return ["predict", t / "in", t / "out"], "case fails"


@probe
def p07_int8(t):
    c = write_case(t / "in", "C-1")
    for m in ("t1n", "t1c", "t2w", "t2f"):
        rewrite(c, m, lambda d: (d / 20).astype(np.int8), np.int8)
    return ["predict", t / "in", t / "out"], "ok"


@probe
def p08_uint16_float64(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t1n", lambda d: d, np.uint16)
    rewrite(c, "t1c", lambda d: d, np.float64)
    return ["predict", t / "in", t / "out"], "ok"


@probe
def p09_complex(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t2f", lambda d: d.astype(np.complex64), np.complex64)
    return ["predict", t / "in", t / "out"], "case fails: complex"


@probe
def p10_zero_size_file(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t1c")
    p.write_bytes(b"")
    return ["predict", t / "in", t / "out"], "case fails"


@probe
def p11_truncated_gzip(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t2f")
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    return ["predict", t / "in", t / "out"], "case fails"


@probe
def p12_nii_mixed_with_niigz(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t2w", lambda d: d, ext=".nii")
    rewrite(c, "t1n", lambda d: d, ext=".nii")
    return ["predict", t / "in", t / "out"], "ok"


@probe
def p13_duplicate_nii_and_niigz(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t2w")
    save(np.asarray(nib.load(p).dataobj), c / "C-1-t2w.nii")
    write_case(t / "in", "C-2")
    return ["predict", t / "in", t / "out"], "C-1 fails (two files), C-2 ok"


@probe
def p14_unicode_space_ids(t):
    write_case(t / "in", "Case ü 1")
    write_case(t / "in", "病例-2")
    return ["predict", t / "in", t / "out"], "both ok"


@probe
def p15_output_equals_input(t):
    write_case(t / "in", "C-1")
    return ["predict", t / "in", t / "in"], "usage error"


@probe
def p16_output_is_a_file(t):
    write_case(t / "in", "C-1")
    (t / "out").write_text("x")
    return ["predict", t / "in", t / "out"], "usage error, file untouched"


@probe
def p17_input_is_a_file(t):
    c = write_case(t / "in", "C-1")
    return ["predict", mod(c, "t1n"), t / "out"], "usage error"


@probe
def p18_input_missing(t):
    return ["predict", t / "nothere", t / "out"], "usage error"


@probe
def p19_empty_case_prefix_flat(t):
    c = write_case(t / "in", "C-1")
    for p in c.glob("*.nii.gz"):
        p.rename(t / "in" / p.name.replace("C-1", ""))  # -t1n.nii.gz ... at INPUT root
    c.rmdir()
    return ["predict", t / "in", t / "out"], "the files as one case (folder name) or a clear error"


@probe
def p20_empty_prefix_next_to_other(t):
    c = write_case(t / "in", "C-1")
    for p in c.glob("*.nii.gz"):
        shutil.move(str(p), t / "in" / p.name)
    c.rmdir()
    write_case(t, "X")
    for p in (t / "X").glob("*t1n.nii.gz"):
        shutil.copy(p, t / "in" / "-t1n.nii.gz")
    return ["predict", t / "in", t / "out"], "no output named .nii.gz; clear error for the empty ID"


@probe
def p21_huge_header_dims(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t2w")
    img = nib.load(p)
    hdr = img.header.copy()
    hdr.set_data_shape((4000, 4000, 4000))
    raw = np.zeros(10, np.int16)
    with gzip.open(p, "wb") as f:
        f.write(hdr.binaryblock)
        f.write(b"\0" * (int(hdr["vox_offset"]) - 348))
        f.write(raw.tobytes())
    return ["predict", t / "in", t / "out"], "case fails: truncated / too large, no MemoryError"


@probe
def p22_qform_sform_disagree(t):
    c = write_case(t / "in", "C-1")
    for m in ("t1n", "t1c", "t2w", "t2f"):
        replace_image(mod(c, m), qform_moved)
    return ["predict", t / "in", t / "out"], "ok, output header keeps both"


@probe
def p23_singular_affine(t):
    c = write_case(t / "in", "C-1")

    def edit(h):
        h["pixdim"][1:4] = 0
        h["qform_code"] = 0
        h["sform_code"] = 1
        h["srow_x"][:] = 0
        h["srow_y"][:] = 0
        h["srow_z"][:] = 0

    for m in ("t1n", "t1c", "t2w", "t2f"):
        rewrite_header_raw(mod(c, m), edit)
    return ["predict", t / "in", t / "out"], "case fails or ok, clearly"


@probe
def p24_nan_affine(t):
    c = write_case(t / "in", "C-1")

    def edit(h):
        h["qform_code"] = 0
        h["sform_code"] = 1
        h["srow_x"][0] = np.nan

    for m in ("t1n", "t1c", "t2w", "t2f"):
        rewrite_header_raw(mod(c, m), edit)
    return ["predict", t / "in", t / "out"], "case fails clearly"


@probe
def p25_scl_slope_huge(t):
    c = write_case(t / "in", "C-1")

    def huge_slope(img):
        new = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
        new.header.set_slope_inter(1e38, 0)
        return new

    replace_image(mod(c, "t2f"), huge_slope)
    return ["predict", t / "in", t / "out"], "case fails clearly (overflow) or ok"


@probe
def p26_folder_named_like_modality(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t1c")
    p.unlink()
    (c / "C-1-t1c.nii.gz").mkdir()
    return ["predict", t / "in", t / "out"], "case fails: t1c is a folder (not absent)"


@probe
def p27_fifo_modality(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t1c")
    p.unlink()
    os.mkfifo(c / "C-1-t1c.nii.gz")
    return ["predict", t / "in", t / "out"], "case fails: not a regular file, no hang"


@probe
def p28_symlink_loop(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t1c")
    p.unlink()
    os.symlink("C-1-t1c.nii.gz", c / "C-1-t1c.nii.gz")
    return ["predict", t / "in", t / "out"], "case fails: link loop"


@probe
def p29_case_folder_symlink_to_itself(t):
    write_case(t / "in", "C-1")
    os.symlink("..", t / "in" / "C-1" / "up")
    return ["predict", t / "in", t / "out"], "ok, no infinite walk"


@probe
def p30_output_symlink_to_input(t):
    write_case(t / "in", "C-1")
    os.symlink(t / "in", t / "out")
    return ["predict", t / "in", t / "out"], "usage error"


@probe
def p31_output_inside_case_folder(t):
    write_case(t / "in", "C-1")
    return ["predict", t / "in" / "C-1", t / "in" / "C-1" / "out"], "usage error"


@probe
def p32_report_dir_is_a_file(t):
    write_case(t / "in", "C-1")
    (t / "rep").write_text("x")
    return ["predict", t / "in", t / "out", "--report-dir", t / "rep"], "usage error"


@probe
def p33_image_like_label_map_uint8(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t2f", lambda d: (d > 0).astype(np.uint8) * 3, np.uint8)
    return ["predict", t / "in", t / "out"], "case fails: not a scan"


@probe
def p34_all_zero_modality(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t1c", lambda d: np.zeros_like(d))
    return ["predict", t / "in", t / "out"], "case fails or ok with a warning"


@probe
def p35_big_endian(t):
    c = write_case(t / "in", "C-1")

    def big_endian(img):
        new = nib.Nifti1Image(np.asarray(img.dataobj).astype(">i2"), img.affine)
        new.set_qform(img.affine, 1)
        return new

    replace_image(mod(c, "t2f"), big_endian)
    return ["predict", t / "in", t / "out"], "ok"


@probe
def p36_nifti2(t):
    c = write_case(t / "in", "C-1")
    for m in ("t1n", "t1c", "t2w", "t2f"):
        replace_image(mod(c, m), lambda img: nib.Nifti2Image(np.asarray(img.dataobj), img.affine))
    return ["predict", t / "in", t / "out"], "ok, output NIfTI2 or NIfTI1 with the same geometry"


@probe
def p37_analyze_pair(t):
    c = write_case(t / "in", "C-1")
    p = mod(c, "t1n")
    img = nib.load(p)
    nib.save(nib.AnalyzeImage(np.asarray(img.dataobj), img.affine), str(c / "C-1-t1n.img"))
    p.unlink()
    return ["predict", t / "in", t / "out"], "ok (t1n absent, warning naming the .img?)"


@probe
def p38_rgb_dtype(t):
    c = write_case(t / "in", "C-1")

    def rgb(img):
        d = np.asarray(img.dataobj)
        out = np.zeros(d.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        out["R"] = np.clip(d // 8, 0, 255)
        return nib.Nifti1Image(out, img.affine)

    replace_image(mod(c, "t1n"), rgb)
    return ["predict", t / "in", t / "out"], "case fails: not an intensity image"


@probe
def p39_mha_only_case_next_to_good(t):
    write_case(t / "in", "C-1")
    c = write_case(t / "in", "C-2")
    for p in c.glob("*.nii.gz"):
        p.rename(p.with_name(p.name.replace(".nii.gz", ".mha")))
    return ["predict", t / "in", t / "out"], "C-1 ok; C-2 not silently dropped?"


@probe
def p40_case_id_with_newline(t):
    write_case(t / "in", "C\n1")
    return ["predict", t / "in", t / "out"], "ok or clear error"


# ---- evaluate
def pred_and_ref(t, ref_fn=None, pred_fn=None):
    (t / "pred").mkdir()
    (t / "ref").mkdir()
    _, tumour = synthetic_volumes()
    lab = tumour.astype(np.uint8) * 2
    save(lab if pred_fn is None else pred_fn(lab), t / "pred" / "C-1.nii.gz")
    save(lab if ref_fn is None else ref_fn(lab), t / "ref" / "C-1-seg.nii.gz")


@probe
def e01_ref_wrong_shape(t):
    pred_and_ref(t, ref_fn=lambda lab: lab[:, :, :18])
    return ["evaluate", t / "pred", t / "ref"], "case fails: shape"


@probe
def e02_ref_4d(t):
    pred_and_ref(t, ref_fn=lambda lab: lab[..., None].repeat(2, -1))
    return ["evaluate", t / "pred", t / "ref"], "case fails: 4D"


@probe
def e03_pred_truncated(t):
    pred_and_ref(t)
    p = t / "pred" / "C-1.nii.gz"
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    return ["evaluate", t / "pred", t / "ref"], "case fails: truncated"


@probe
def e04_ref_affine_differs(t):
    pred_and_ref(t)
    shift_origin(t / "ref" / "C-1-seg.nii.gz", 10)
    return ["evaluate", t / "pred", t / "ref"], "case fails or warns: grids"


@probe
def e05_pred_float_fraction(t):
    pred_and_ref(t, pred_fn=lambda lab: lab.astype(np.float32) * 0.75)
    return ["evaluate", t / "pred", t / "ref"], "case fails: not labels"


@probe
def e06_no_refs(t):
    pred_and_ref(t)
    shutil.rmtree(t / "ref")
    (t / "ref").mkdir()
    return ["evaluate", t / "pred", t / "ref"], "usage error"


@probe
def e07_pred_nan(t):
    pred_and_ref(t, pred_fn=lambda lab: np.where(lab > 0, np.nan, 0).astype(np.float32))
    return ["evaluate", t / "pred", t / "ref"], "case fails"


@probe
def e08_output_json_in_missing_dir(t):
    pred_and_ref(t)
    return [
        "evaluate",
        t / "pred",
        t / "ref",
        "-o",
        t / "no" / "such" / "dir" / "x.json",
    ], "writes or clear error"


@probe
def p41_5d_singleton(t):
    c = write_case(t / "in", "C-1")
    rewrite(c, "t2f", lambda d: d[..., None, None])
    return ["predict", t / "in", t / "out"], "ok or clear error"


@probe
def e09_pred_is_a_folder(t):
    pred_and_ref(t)
    p = t / "pred" / "C-1.nii.gz"
    p.unlink()
    p.mkdir()
    return ["evaluate", t / "pred", t / "ref"], "case fails or missing prediction, named"


@probe
def e10_pred_dir_is_ref_dir(t):
    pred_and_ref(t)
    shutil.copy(t / "ref" / "C-1-seg.nii.gz", t / "pred" / "C-1-seg.nii.gz")
    return ["evaluate", t / "pred", t / "pred"], "scores C-1 once"


# ---- merge-reports
@probe
def m01_reports_dir_missing(t):
    return ["merge-reports", t / "nothere"], "usage error"


@probe
def m02_report_is_a_folder(t):
    (t / "reps").mkdir()
    (t / "reps" / "report-shard-1-of-2.json").mkdir()
    return ["merge-reports", t / "reps"], "usage error"


@probe
def m03_report_binary(t):
    (t / "reps").mkdir()
    (t / "reps" / "report-shard-1-of-2.json").write_bytes(b"\xff\xfe\x00garbage")
    return ["merge-reports", t / "reps"], "usage error"


@probe
def m04_report_json_list(t):
    (t / "reps").mkdir()
    (t / "reps" / "report-shard-1-of-2.json").write_text("[]")
    return ["merge-reports", t / "reps"], "usage error"


def main(names):
    for name in names or PROBES:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            try:
                args, expect = PROBES[name](t)
            except Exception as exc:
                print(json.dumps({"probe": name, "setup_error": repr(exc)}))
                continue
            watched = [a for a in args if isinstance(a, Path) and a.exists()]
            before = {str(w): digest(w) for w in watched if w.name not in ("out",)}
            try:
                rc, text = cli(*args, *(BASE if args[0] == "predict" else []), timeout=120)
            except subprocess.TimeoutExpired:
                rc, text = "TIMEOUT", ""
            after = {w: digest(Path(w)) for w in before if Path(w).exists()}
            changed = [w for w in before if before[w] != after.get(w)]
            tmps = [
                str(p.relative_to(t))
                for p in t.rglob("*")
                if ".tmp" in p.name or "write-test" in p.name or p.name.endswith(".lock")
            ]
            rep = None
            for cand in (t / "out" / "report.json", t / "in" / "report.json"):
                if cand.exists():
                    try:
                        rep = json.loads(cand.read_text())
                    except Exception:
                        rep = "UNREADABLE"
            cases = None
            if isinstance(rep, dict):
                cases = {
                    c["case_id"]: (
                        c["status"],
                        (c.get("error") or "")[:300],
                        [w[:200] for w in c.get("warnings", [])][:3],
                    )
                    for c in rep["cases"]
                }
            outs = sorted(p.name for p in (t / "out").iterdir()) if (t / "out").is_dir() else None
            flags = []
            if "Traceback" in text:
                flags.append("TRACEBACK")
            if changed:
                flags.append(f"INPUT CHANGED {changed}")
            if tmps:
                flags.append(f"LEFTOVER {tmps}")
            print(
                json.dumps(
                    {
                        "probe": name,
                        "expect": expect,
                        "rc": rc,
                        "flags": flags,
                        "cases": cases,
                        "out": outs,
                        "text": text.strip()[-700:],
                    },
                    ensure_ascii=False,
                )
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
