"""A disk cache of the OpenVINO models the CPU runtime exports (IR: ``model.xml`` + ``.bin``).

Exporting LiteMedSAM's image encoder through ONNX costs ~2.2 s and a ~0.4 GB transient in
every process; reading the saved IR back costs ~0.1 s, its sha256 check included. So the
first process on a machine exports and saves, later ones read.

Location: ``$BRATS_GOAT_CACHE`` if set (empty turns the cache off), else
``$XDG_CACHE_HOME/brats-goat``, else ``~/.cache/brats-goat``; entries live in its
``openvino/`` folder (``docker/local-base.sh`` keeps its rootfs tarballs in the same root).
A cache that cannot be created or written (a read-only home in a container, no home at all)
is no cache: the network is exported as without one, silently, since nothing the user gets
differs but the start-up time.

An entry is a folder named by a sha256 over everything that decides the exported graph
(``entry_key``). It is written as a temporary folder inside ``openvino/`` and renamed into
place: a rename is atomic, so an entry folder that exists is complete, and of two processes
writing the same entry at once the second rename fails and that process drops its copy.
The folder also holds the sha256 of its two files: an entry that does not match it, or
that OpenVINO cannot read (truncated, garbage), is set aside and written anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Turns the cache off when set to an empty value; names its folder otherwise.
CACHE_ENV = "BRATS_GOAT_CACHE"

#: Bump when the export code (``brats_goat.stages.runtime``) changes the graph it writes.
FORMAT = 1

#: Files of an entry; ``DIGEST_FILE`` holds the sha256 of the other two.
XML_FILE, BIN_FILE, DIGEST_FILE = "model.xml", "model.bin", "sha256"

#: Temporary folders older than this were left by a killed process and are removed.
STALE_TMP_S = 3600.0


def cache_root() -> Path | None:
    """Where entries go (``None`` = no cache): see the module's docstring."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative or empty value is to be ignored
        return Path(xdg) / "brats-goat"
    try:
        return Path.home() / ".cache" / "brats-goat"
    except RuntimeError:  # no $HOME and no passwd entry (a container's arbitrary uid)
        return None


def entry_key(name: str, module: nn.Module, signature: object) -> str:
    """sha256 over what decides the graph: ``name``, ``signature`` (the inputs' shapes and
    whatever config the export reads, by ``repr``), the versions of torch, onnx and OpenVINO,
    ``FORMAT``, and ``module``: its submodules' classes, their plain attributes (heads,
    window sizes, training flag), the source files of those classes, and every parameter
    and buffer (name, dtype, shape, bytes; ~0.05 s for LiteMedSAM's 25 MB)."""
    digest = hashlib.sha256()
    for part in (FORMAT, name, repr(signature), *_versions()):
        digest.update(f"{part}\n".encode())
    sources = set()
    for sub_name, sub in module.named_modules():
        cls = type(sub)
        digest.update(f"{sub_name}:{cls.__module__}.{cls.__qualname__}:{_plain(sub)}\n".encode())
        sources.add(getattr(sys.modules.get(cls.__module__), "__file__", None))
    for source in sorted(s for s in sources if s):
        digest.update(Path(source).read_bytes())
    tensors = [*module.named_parameters(), *module.named_buffers()]
    for tensor_name, tensor in tensors:
        digest.update(f"{tensor_name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _versions() -> tuple[str, ...]:
    import onnx
    import openvino

    return torch.__version__, onnx.__version__, openvino.__version__


def _plain(module: nn.Module) -> str:
    """The module's attributes of plain types, sorted: what shapes its forward pass
    besides its tensors (``num_heads`` and the like are not in the state dict)."""
    return repr(sorted((k, v) for k, v in vars(module).items() if _is_plain(v)))


def _is_plain(value: object) -> bool:
    """A bool, number, string or None, or a tuple or list of them."""
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return isinstance(value, (bool, int, float, str, type(None)))


def cached_model(core: Any, name: str, key: str, build: Callable[[], Any]) -> Any:
    """The ``openvino.Model`` of entry ``key``: read from the cache, else ``build()`` and
    saved there for the next process (where it can be: see the module's docstring)."""
    root = cache_root()
    if root is None:
        return build()
    folder = root / "openvino" / f"{name}-{key[:32]}"
    damaged = folder.is_dir()  # an entry there that cannot be read is to be replaced
    model = _read(core, folder)
    if model is None:
        model = build()
        _write(model, folder, replace=damaged)
    return model


def _read(core: Any, folder: Path) -> Any:
    """The entry's model, or ``None`` when there is none or it is damaged."""
    if not folder.is_dir():
        return None
    try:
        expected = (folder / DIGEST_FILE).read_text().strip()
        if _digest(folder) == expected:
            return core.read_model(str(folder / XML_FILE), str(folder / BIN_FILE))
    except (OSError, RuntimeError, ValueError):
        pass
    return None


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in (XML_FILE, BIN_FILE):
        digest.update((folder / file).read_bytes())
    return digest.hexdigest()


def _write(model: Any, folder: Path, replace: bool) -> None:
    """Save ``model`` as entry ``folder`` (``replace``: in place of a damaged one); any
    failure (read-only, full disk) leaves no entry and no temporary folder, and is not an
    error."""
    import openvino as ov

    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        _sweep(folder.parent)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        tmp.chmod(0o755)  # mkdtemp's 0o700 would hide the entry from a shared cache's users
        # float32 as exported: save_model would otherwise store the weights as float16.
        ov.save_model(model, str(tmp / XML_FILE), compress_to_fp16=False)
        (tmp / DIGEST_FILE).write_text(_digest(tmp) + "\n")
        if replace:
            _set_aside(folder)
        os.rename(tmp, folder)  # fails if another process has just written it: keep theirs
    except (OSError, RuntimeError):
        pass
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _set_aside(folder: Path) -> None:
    """Move a damaged entry out of the way (atomically, so a reader sees it whole or not at
    all) and delete it; a missing one is nothing to do."""
    if not folder.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent)) / "damaged"
    with contextlib.suppress(FileNotFoundError):  # another process set it aside first
        os.rename(folder, trash)
    shutil.rmtree(trash.parent, ignore_errors=True)


def _sweep(parent: Path) -> None:
    """Remove temporary folders that a killed process left behind."""
    now = time.time()
    for tmp in parent.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
