"""Checkpoints: save with their config, load only after a sha256 check.

A checkpoint is a plain dict of tensors and primitives so it loads with
``torch.load(weights_only=True)`` (no pickle code execution). ``weights/manifest.json``
lists every shipped file with its sha256 and provenance; loading refuses a file whose
hash does not match, which catches truncated downloads and silently swapped weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from brats_goat.model.network import ModelConfig, MViTAE
from brats_goat.serialise import from_dict, to_dict
from brats_goat.stages.postprocess import PostprocessConfig

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Environment variable that points at a weights folder or a checkpoint file.
WEIGHTS_ENV = "BRATS_GOAT_WEIGHTS"


class WeightsError(Exception):
    """Missing, unlisted or corrupt weights."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def save_checkpoint(
    path: str | Path,
    model: MViTAE,
    *,
    postprocess: PostprocessConfig | None = None,
    info: dict[str, Any] | None = None,
    half: bool = True,
) -> str:
    """Save model weights (fp16 by default, to keep files small) and config; return sha256."""
    state = {
        k: (v.detach().to("cpu").half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": to_dict(model.cfg),
        "postprocess": to_dict(postprocess or PostprocessConfig()),
        "info": json.dumps(info or {}),
        "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return sha256_file(path)


def load_checkpoint(
    path: str | Path, expected_sha256: str | None, map_location: str = "cpu"
) -> tuple[MViTAE, dict[str, Any]]:
    """Verify, then load a checkpoint into a float32 model in eval mode.

    ``expected_sha256=None`` is allowed only for files being produced right now (training,
    tests); predict always goes through ``load_verified``.
    """
    path = Path(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise WeightsError(
                f"sha256 mismatch for {path}: expected {expected_sha256}, got {actual} "
                "(corrupt or replaced file)"
            )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for bad files
        raise WeightsError(f"cannot load checkpoint {path}: {exc}") from exc
    if payload.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: unsupported checkpoint format {payload.get('format_version')}")
    cfg = from_dict(ModelConfig, payload["model_config"])
    model = MViTAE(cfg)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    model.eval()
    meta = {
        "model_config": cfg,
        "postprocess": from_dict(PostprocessConfig, payload.get("postprocess", {})),
        "info": json.loads(payload.get("info", "{}")),
        "path": str(path),
        "sha256": expected_sha256,
    }
    return model, meta


def load_verified(weights: str | Path | None = None) -> tuple[MViTAE, dict[str, Any]]:
    """Resolve through the manifest and load with the checksum check."""
    path, sha = resolve_checkpoint(weights)
    return load_checkpoint(path, sha)


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
