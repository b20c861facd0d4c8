"""Checkpoints: save with their config, load only after a sha256 check.

A checkpoint is a plain dict of tensors and primitives so it loads with
``torch.load(weights_only=True)`` (no pickle code execution). ``weights/manifest.json``
(``brats_goat.model.manifest``) lists every shipped file with its sha256 and provenance;
loading refuses a file whose hash does not match, which catches truncated downloads and
silently swapped weights. The manifest names stay importable from here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from brats_goat.model.manifest import (
    MANIFEST_NAME,
    WEIGHTS_ENV,
    WeightsError,
    default_weights_dir,
    read_manifest,
    refuse_if_removed,
    register_in_manifest,
    resolve_checkpoint,
)
from brats_goat.model.network import ModelConfig, MViTAE
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.serialise import from_dict, to_dict

FORMAT_VERSION = 1

# The manifest names lived here before ``manifest`` existed; callers still import them here.
__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "WEIGHTS_ENV",
    "WeightsError",
    "default_weights_dir",
    "load_checkpoint",
    "load_verified",
    "read_manifest",
    "register_in_manifest",
    "resolve_checkpoint",
    "save_checkpoint",
    "sha256_file",
]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so a large checkpoint is never held whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    tests); predict always goes through ``load_verified``. A file whose checksum is right but
    whose content is not a complete checkpoint (a hand-made or edited one) is a
    ``WeightsError`` that names the file and the entry, never a ``KeyError``.
    """
    path = Path(path)
    if not path.is_file():  # a superseded one (``--init``) names its way back from git
        refuse_if_removed(path)
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
    check_payload(payload, path)
    model = build_model(payload, path)
    postprocess = payload.get("postprocess", {})
    meta = {
        "model_config": model.cfg,
        "postprocess": _parsed(
            path, "postprocess", lambda: from_dict(PostprocessConfig, postprocess)
        ),
        "info": _parsed(path, "info", lambda: json.loads(payload.get("info", "{}"))),
        "path": str(path),
        "sha256": expected_sha256,
    }
    return model, meta


#: Entries every checkpoint holds, with their type (``postprocess`` and ``info`` are optional).
REQUIRED_ENTRIES: dict[str, type] = {"model_config": dict, "state_dict": dict}


def check_payload(payload: Any, path: Path) -> None:
    """The checkpoint is a dict of this format with every required entry, of the right type."""
    if not isinstance(payload, dict):
        raise WeightsError(
            f"{path} is not a brats-goat checkpoint (holds a {type(payload).__name__}, not a dict)"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: unsupported checkpoint format {payload.get('format_version')}")
    for key, kind in REQUIRED_ENTRIES.items():
        if key not in payload:
            raise WeightsError(f"{path}: checkpoint entry '{key}' is missing")
        if not isinstance(payload[key], kind):
            raise WeightsError(
                f"{path}: checkpoint entry '{key}' must be a {kind.__name__}, "
                f"got {type(payload[key]).__name__}"
            )
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: state_dict entries that are not tensors: {_few(bad)}")


def build_model(payload: dict[str, Any], path: Path) -> MViTAE:
    """The model its ``model_config`` describes, with the weights of its ``state_dict``."""
    try:
        model = MViTAE(from_dict(ModelConfig, payload["model_config"]))
    except (TypeError, ValueError, ArithmeticError, RuntimeError) as exc:
        raise WeightsError(f"{path}: model_config describes no valid model: {exc}") from exc
    state = payload["state_dict"]
    expected = model.state_dict().keys()
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: state_dict does not fit its model_config: "
            f"{len(missing)} tensor(s) missing ({_few(missing)}), "
            f"{len(unexpected)} unexpected ({_few(unexpected)})"
        )
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:  # tensor shapes that do not fit
        raise WeightsError(f"{path}: state_dict does not fit its model_config: {exc}") from exc
    return model.eval()


def _parsed(path: Path, key: str, read: Callable[[], Any]) -> Any:
    """An optional entry as ``read`` parses it; one that cannot be parsed is named."""
    try:
        return read()
    except (TypeError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{path}: checkpoint entry '{key}' cannot be read: {exc}") from exc


def _few(names: list[str]) -> str:
    """The first few names of a list, for a message."""
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") if names else "none"


def load_verified(weights: str | Path | None = None) -> tuple[MViTAE, dict[str, Any]]:
    """Resolve through the manifest and load with the checksum check."""
    path, sha = resolve_checkpoint(weights)
    return load_checkpoint(path, sha)
