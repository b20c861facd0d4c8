"""The disk cache of exported OpenVINO models: a later build reads the entry instead of
exporting, to the same embeddings; a damaged entry is written anew; no cache (turned off,
or a folder that cannot be written) exports as before, without an error.

Real OpenVINO, real LiteMedSAM weights; the cheaper cases use the tiny MViT-AE.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from brats_goat.stages import ir_cache, runtime
from brats_goat.stages.sam_backends import SamFamilyBackend, litemedsam_backend
from tests.stages.test_runtime import ATOL, TINY_TOKENS, tiny_model
from tests.stages.test_sam_encoder_runtime import slices

pytest.importorskip("openvino")

CPU = torch.device("cpu")


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths of every ONNX export from here on (the real exporter runs)."""
    done: list[Path] = []
    real = runtime.legacy_export

    def counted(module, args, path, names, dynamic_axes=None) -> None:
        done.append(path)
        real(module, args, path, names, dynamic_axes)

    monkeypatch.setattr(runtime, "legacy_export", counted)
    return done


def entries(root: Path) -> list[Path]:
    return sorted((root / "openvino").glob("*"))


def test_a_second_backend_reads_the_encoder_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exports: list[Path]
) -> None:
    monkeypatch.setenv(ir_cache.CACHE_ENV, str(tmp_path))
    first = litemedsam_backend(CPU)
    assert len(exports) == 1
    [entry] = entries(tmp_path)
    assert sorted(p.name for p in entry.iterdir()) == ["model.bin", "model.xml", "sha256"]
    assert entry.name.startswith("image-encoder-")
    model = copy.deepcopy(first.model)  # a fresh model and backend, as in the next process
    cached = SamFamilyBackend("litemedsam", model, 256, CPU)
    assert len(exports) == 1, "read from the cache, not exported"
    assert cached.runtime == "openvino" and entries(tmp_path) == [entry]
    reference = SamFamilyBackend("litemedsam", first.model, 256, CPU, runtime="torch")
    images = slices()[1:]
    got, want = cached.encode(images).embeddings, reference.encode(images).embeddings
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL)  # float32, not fp16


def mvitae_output(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(OpenVINO's, torch's) reconstruction of one random batch."""
    x = torch.randn(2, 4, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x).numpy()
    return runtime.OpenVINONetwork(model)(x).numpy(), want


def truncate_bin(entry: Path) -> None:
    bin_file = entry / "model.bin"
    bin_file.write_bytes(bin_file.read_bytes()[:100])


def garble_xml(entry: Path) -> None:
    (entry / "model.xml").write_text("<net>not a model")


def flip_weights(entry: Path) -> None:
    """The same size, other numbers: OpenVINO would read it; the entry's sha256 says no."""
    bin_file = entry / "model.bin"
    data = bytearray(bin_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    bin_file.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate_bin, garble_xml, flip_weights])
def test_a_damaged_entry_is_exported_again_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exports: list[Path], damage
) -> None:
    monkeypatch.setenv(ir_cache.CACHE_ENV, str(tmp_path))
    model = tiny_model(TINY_TOKENS)
    mvitae_output(model)
    [entry] = entries(tmp_path)
    damage(entry)
    got, want = mvitae_output(model)
    assert len(exports) == 2, "the damaged entry was not used"
    np.testing.assert_allclose(got, want, atol=ATOL)
    assert entries(tmp_path) == [entry], "replaced, no temporary folder left"
    mvitae_output(model)
    assert len(exports) == 2, "the new entry is read"


def test_an_empty_cache_variable_turns_the_cache_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exports: list[Path]
) -> None:
    monkeypatch.setenv(ir_cache.CACHE_ENV, "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ir_cache.cache_root() is None
    model = tiny_model()
    mvitae_output(model)
    got, want = mvitae_output(model)
    assert len(exports) == 2
    np.testing.assert_allclose(got, want, atol=ATOL)
    assert list(tmp_path.iterdir()) == [], "nothing written anywhere"


@pytest.mark.parametrize("kind", ["under-a-file", "read-only"])
def test_a_cache_that_cannot_be_written_is_no_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exports: list[Path],
    kind: str,
) -> None:
    if kind == "under-a-file":
        (tmp_path / "file").write_text("")
        root = tmp_path / "file" / "cache"  # can never be created
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder")
        root = tmp_path / "ro"
        root.mkdir(mode=0o500)
    monkeypatch.setenv(ir_cache.CACHE_ENV, str(root))
    model = tiny_model()
    mvitae_output(model)
    got, want = mvitae_output(model)
    assert len(exports) == 2
    np.testing.assert_allclose(got, want, atol=ATOL)
    assert capsys.readouterr().err == "", "not worth a warning"
    assert not (tmp_path / "file" / "cache").exists() and list(root.parent.glob("ro/*")) == []


def test_the_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ir_cache.CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ir_cache.cache_root() == tmp_path / "mine"
    monkeypatch.delenv(ir_cache.CACHE_ENV)
    assert ir_cache.cache_root() == tmp_path / "xdg" / "brats-goat"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the XDG spec: ignored
    assert ir_cache.cache_root() == tmp_path / "home" / ".cache" / "brats-goat"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert ir_cache.cache_root() == tmp_path / "home" / ".cache" / "brats-goat"


def test_the_key_follows_what_decides_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    key = ir_cache.entry_key("mvitae", model, (model.cfg, 2))
    assert ir_cache.entry_key("mvitae", copy.deepcopy(model), (model.cfg, 2)) == key
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3
    assert ir_cache.entry_key("mvitae", other, (model.cfg, 2)) != key, "weights"
    assert ir_cache.entry_key("mvitae", model, (model.cfg, 1)) != key, "input signature"
    assert ir_cache.entry_key("other", model, (model.cfg, 2)) != key, "network's name"
    assert ir_cache.entry_key("mvitae", copy.deepcopy(model).train(), (model.cfg, 2)) != key
    monkeypatch.setattr(ir_cache, "FORMAT", ir_cache.FORMAT + 1)
    assert ir_cache.entry_key("mvitae", model, (model.cfg, 2)) != key, "export code"


def test_two_writers_of_one_entry_keep_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exports: list[Path]
) -> None:
    """Two processes that both missed the entry both write it: the second rename fails
    and that copy is dropped; the entry stays whole and no temporary folder is left."""
    import openvino as ov

    monkeypatch.setenv(ir_cache.CACHE_ENV, str(tmp_path))
    model = tiny_model()
    mvitae_output(model)
    [entry] = entries(tmp_path)
    before = {p.name: p.read_bytes() for p in entry.iterdir()}
    core = ov.Core()
    model_ir = core.read_model(str(entry / "model.xml"))
    ir_cache._write(model_ir, entry, replace=False)  # the slower process
    assert entries(tmp_path) == [entry]
    assert {p.name: p.read_bytes() for p in entry.iterdir()} == before
