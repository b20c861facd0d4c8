import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

root = Path("/tmp/wide17/real" + (sys.argv[2] if len(sys.argv) > 2 else ""))
root.mkdir(exist_ok=True)
case = sys.argv[1]
src = Path("/work/shared/data/real") / case
PAD = int(sys.argv[2]) if len(sys.argv) > 2 else 130
(root / "plain" / case).mkdir(parents=True, exist_ok=True)
(root / "padded" / case).mkdir(parents=True, exist_ok=True)
for f in sorted(src.glob("*.nii.gz")):
    if not any(f.name.endswith(f"-{m}.nii.gz") for m in ("t1n", "t1c", "t2w", "t2f")):
        continue
    shutil.copy(f, root / "plain" / case / f.name)
    img = nib.load(f)
    d = np.asarray(img.dataobj)
    padded = np.pad(d, ((PAD, 0), (0, 0), (0, 0)))
    aff = img.affine.copy()
    aff[:3, 3] -= aff[:3, 0] * PAD  # voxel i+PAD of padded = voxel i of plain
    out = nib.Nifti1Image(padded, aff, img.header)
    out.set_qform(aff, int(img.header["qform_code"]))
    out.set_sform(aff, int(img.header["sform_code"]))
    nib.save(out, root / "padded" / case / f.name)
res = {}
for name, tree in (("pre17", "/work/wt-pre17"), ("branch", "/work/wt-17")):
    for kind in ("plain", "padded"):
        out = root / f"out-{name}-{kind}"
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "brats_goat.cli",
                "predict",
                str(root / kind),
                str(out),
                "--quiet",
                "--refine",
                "none",
                "--device",
                "cpu",
            ],
            env={**os.environ, "PYTHONPATH": tree, "BRATS_GOAT_REFINE": "none"},
            capture_output=True,
            text=True,
        )
        lab = np.asarray(nib.load(out / f"{case}.nii.gz").dataobj)
        res[(name, kind)] = lab[PAD:] if kind == "padded" else lab
        print(name, kind, "rc", p.returncode, "labelled", int((lab > 0).sum()), flush=True)
for name in ("pre17", "branch"):
    a, b = res[(name, "plain")], res[(name, "padded")]
    print(
        name,
        "padded vs plain: voxels that differ",
        int((a != b).sum()),
        "WT dice",
        round(2 * int(((a > 0) & (b > 0)).sum()) / max(1, int((a > 0).sum() + (b > 0).sum())), 4),
    )
