"""The weights manifest: which checkpoint files a folder vouches for, and where they came from.

``<folder>/manifest.json`` lists every checkpoint with its sha256 and provenance and names the
``default`` one. Loading goes through it so a file nobody listed, or one whose hash changed,
is refused; training and calibration add their output to it on request. A superseded
checkpoint that left the folder keeps its entry, with ``removed.restore``: the command that
gets it back from git history, which the refusal quotes. Kept apart from ``checkpoint``
(torch serialisation) so reading or writing a manifest needs no torch.
"""

from __future__ import annotations

import json
import os
import re
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


_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


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
    """The manifest of ``folder``; without one no checkpoint there can be verified.

    A hand-edited or truncated manifest is a ``WeightsError`` naming the file and the field,
    so the CLI reports it as a usage error instead of a traceback.
    """
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(f"no {MANIFEST_NAME} in {folder}: cannot verify weights")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable JSON file: {exc}") from exc
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: Any, path: Path) -> None:
    """Every field that loading relies on, with the type it must have."""
    if not isinstance(manifest, dict):
        raise WeightsError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise WeightsError(
            f"{path}: field 'files' must be an object mapping checkpoint file names to their "
            f"sha256 and provenance, got {_kind(files)}"
        )
    default = manifest.get("default")
    if default is not None and not _is_file_name(default):
        raise WeightsError(
            f"{path}: field 'default' must be the name of a checkpoint file in this folder, "
            f"got {default!r}"
        )
    for name, entry in files.items():
        if not _is_file_name(name):
            raise WeightsError(f"{path}: files key {name!r} is not a plain file name")
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise WeightsError(
                f"{path}: field 'files.{name}.sha256' must be a sha256 (64 hex digits), "
                f"got {_kind(sha if isinstance(entry, dict) else entry)}"
            )


def _is_file_name(name: Any) -> bool:
    """A plain file name: not empty, no folder part, not ``.`` or ``..``."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name


def _kind(value: Any) -> str:
    """A field's value for a message: missing, or its type and (short) value."""
    if value is None:
        return "nothing (missing)"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def resolve_checkpoint(weights: str | Path | None = None) -> tuple[Path, str]:
    """Checkpoint path and its expected sha256 from the manifest of its folder.

    ``weights`` may be a checkpoint file, a folder with a manifest (its ``default`` entry is
    used) or ``None`` (the default folder).
    """
    target = Path(weights) if weights is not None else default_weights_dir()
    if not target.exists():
        refuse_if_removed(target)
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
        refuse_if_removed(path, manifest)
        raise WeightsError(f"checkpoint {path} listed in the manifest does not exist")
    return path, entry["sha256"].lower()


def refuse_if_removed(path: Path, manifest: dict[str, Any] | None = None) -> None:
    """A superseded checkpoint left the folder but kept its entry: say how to get it back.

    Called for a checkpoint that is not there; does nothing unless the manifest of its
    folder (``manifest``, else read here, if readable) records it as removed.
    """
    if manifest is None:
        try:
            manifest = read_manifest(path.parent)
        except WeightsError:  # no manifest, or a broken one: the caller's message stands
            return
    entry = manifest.get("files", {}).get(path.name)
    removed = entry.get("removed") if isinstance(entry, dict) else None
    restore = removed.get("restore") if isinstance(removed, dict) else None
    if isinstance(restore, str):
        raise WeightsError(
            f"checkpoint {path.name} is superseded and no longer ships in {path.parent}; "
            f"get it back from git history with: {restore}"
        )


def register_in_manifest(
    path: Path, sha256: str, provenance: dict[str, Any], default: bool
) -> None:
    """Add or update ``path`` in the manifest of its folder."""
    manifest_path = path.parent / MANIFEST_NAME
    manifest = read_manifest(path.parent) if manifest_path.is_file() else {"files": {}}
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
