"""The weights manifest: which checkpoint files a folder vouches for, and where they came from.

``<folder>/manifest.json`` lists every checkpoint with its sha256 and provenance and names the
``default`` one. Loading goes through it so a file nobody listed, or one whose hash changed,
is refused; training and calibration add their output to it on request. Kept apart from
``checkpoint`` (torch serialisation) so reading or writing a manifest needs no torch.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
#: Environment variable that points at a weights folder or a checkpoint file.
WEIGHTS_ENV = "BRATS_GOAT_WEIGHTS"
#: Training info recorded with a registered checkpoint: enough to reproduce and audit it,
#: without the per-epoch history (that goes to the ``.train.json`` next to it).
TRAINED_INFO_KEYS = (
    "command",
    "data",
    "healthy_data",
    "seed",
    "arch",
    "cases",
    "parameters",
    "device",
    "processes",
    "steps",
    "best_epoch",
    "best_val_loss",
    "calibration",
    "initialised_from",
    "wall_time_s",
    "started",
)


class WeightsError(Exception):
    """Missing, unlisted or corrupt weights."""


def default_weights_dir() -> Path:
    """``$BRATS_GOAT_WEIGHTS``, else ``weights/`` of a source checkout, else the image's copy."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "weights"
    if (checkout / MANIFEST_NAME).is_file():
        return checkout
    return Path("/opt/brats-goat/weights")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``; without one no checkpoint there can be verified."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(f"no {MANIFEST_NAME} in {folder}: cannot verify weights")
    return json.loads(path.read_text())


def resolve_checkpoint(weights: str | Path | None = None) -> tuple[Path, str]:
    """Checkpoint path and its expected sha256 from the manifest of its folder.

    ``weights`` may be a checkpoint file, a folder with a manifest (its ``default`` entry is
    used) or ``None`` (the default folder).
    """
    target = Path(weights) if weights is not None else default_weights_dir()
    if not target.exists():
        raise WeightsError(f"weights not found at {target}: pass --weights or set ${WEIGHTS_ENV}")
    if target.is_dir():
        folder = target
        manifest = read_manifest(folder)
        name = manifest.get("default")
        if not name:
            raise WeightsError(f"{folder / MANIFEST_NAME} names no default checkpoint")
        path = folder / name
    else:
        folder, path = target.parent, target
        manifest = read_manifest(folder)
    entry = manifest.get("files", {}).get(path.name)
    if entry is None:
        raise WeightsError(f"{path.name} is not listed in {folder / MANIFEST_NAME}")
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} listed in the manifest does not exist")
    return path, entry["sha256"]


def register_in_manifest(
    path: Path, sha256: str, provenance: dict[str, Any], default: bool
) -> None:
    """Add or update ``path`` in the manifest of its folder."""
    manifest_path = path.parent / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"files": {}}
    entry = {"sha256": sha256, "bytes": path.stat().st_size, **provenance}
    manifest.setdefault("files", {})[path.name] = entry
    if default or not manifest.get("default"):
        manifest["default"] = path.name
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def provenance_record(
    args: Sequence[str],
    data: Sequence[Path],
    healthy_data: Sequence[Path],
    seed: int,
    arch: str,
) -> dict[str, Any]:
    """What a training run starts from, stored in its checkpoint so the file explains itself.

    ``args`` are the arguments after ``brats-goat train``; the command is rebuilt from them
    (shell-quoted) so it can be re-run as written.
    """
    return {
        "command": "brats-goat train " + shlex.join(args),
        "data": [str(p) for p in data],
        "healthy_data": [str(p) for p in healthy_data],
        "seed": seed,
        "arch": arch,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def register_trained(path: Path, sha256: str, info: dict[str, Any]) -> None:
    """Make a freshly trained checkpoint its folder's default, with its training summary."""
    provenance = {key: info[key] for key in TRAINED_INFO_KEYS if key in info}
    register_in_manifest(path, sha256, provenance, default=True)


def register_calibrated(path: Path, sha256: str, calibration: dict[str, Any]) -> None:
    """Make a re-calibrated checkpoint its folder's default, with the new calibration."""
    register_in_manifest(path, sha256, {"calibration": calibration}, default=True)
