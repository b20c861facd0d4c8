"""Where the networks' forward passes run: eager PyTorch (the reference) or OpenVINO (CPU).

``auto`` (the default) picks, per network, the runtime measured fastest on the device:
OpenVINO for a SAM-family image encoder on a CPU in float32 (LiteMedSAM's TinyViT: 2x
eager torch per slice, results/sam-encoder-runtimes.md), torch for the MViT-AE (its
bfloat16 torch path, and OpenVINO's start-up left no clear margin over whole cases:
docs/results.md).

For the MViT-AE on the 2-core CPU, the decoder's transposed convolutions and batch norms
at full resolution take most of the forward pass; OpenVINO fuses them and runs oneDNN's
blocked layouts, for the same output to ~1e-5 (results/forward-runtimes.md). Networks are
exported through ONNX (the legacy TorchScript exporter, which needs the ``onnx`` package)
once per machine: the OpenVINO model is saved in a disk cache that later processes read
(``ir_cache``; the export costs LiteMedSAM's encoder ~2.2 s, the read ~0.1 s). They are
compiled in float32 in every process: OpenVINO would otherwise pick bf16 on CPUs that have
it, and CPU inference here promises the same output for the same input. Torch runs
the MViT-AE's decoder with its batch norms folded into the convolutions before them
(``fold_batchnorm``).
"""

from __future__ import annotations

import copy
import functools
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from brats_goat.model.network import ModelConfig, MViTAE
from brats_goat.stages import ir_cache

#: ``InferenceConfig.runtime`` choices (``--runtime``): ``auto`` = per network, the fastest
#: measured here; ``torch`` = everything eager torch; ``openvino`` = both networks through
#: OpenVINO on a CPU.
RUNTIMES: tuple[str, ...] = ("auto", "torch", "openvino")

#: Slices of the example batch the network is exported with (the batch axis is dynamic).
EXPORT_BATCH = 2


class Network(Protocol):
    """What ``run_network`` runs: the model's config and its forward pass."""

    cfg: ModelConfig

    def __call__(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor: ...


class _WithPresent(nn.Module):
    """The forward pass with ``present`` always given, so the exported graph takes it."""

    def __init__(self, model: MViTAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.model(x, present)


def export_onnx(model: MViTAE, path: Path) -> None:
    """Write ``model`` (float32, eval) as ONNX with a dynamic batch axis: inputs ``x`` (B, C,
    S, S) and, for a model with a modality mask, ``present`` (B, C)."""
    cfg = model.cfg
    x = torch.zeros(EXPORT_BATCH, cfg.in_channels, cfg.image_size, cfg.image_size)
    module: nn.Module = model
    args: tuple[torch.Tensor, ...] = (x,)
    names = ["x"]
    if cfg.modality_mask:
        module = _WithPresent(model)
        args = (x, torch.ones(EXPORT_BATCH, cfg.in_channels))
        names = ["x", "present"]
    axes = {name: {0: "batch"} for name in [*names, "y"]}
    legacy_export(module.eval(), args, path, names, axes)


def legacy_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    """ONNX through torch's legacy TorchScript exporter, opset 17, output ``y``: OpenVINO
    from ``torch.export`` took 7.4 s at start-up against 1.4 s this way for the MViT-AE
    (results/forward-runtimes.md). A change to what it writes must bump ``ir_cache.FORMAT``,
    or later processes read the models cached before it."""
    with warnings.catch_warnings():  # the exporter's own notices are not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["y"],
            dynamic_axes=dynamic_axes,
            opset_version=17,
        )


def cpu_config(threads: int | None = None) -> dict[str, Any]:
    """OpenVINO's CPU settings for every network here: deterministic float32 (it would pick
    bf16 on CPUs that have it), on as many threads as torch would use."""
    return {
        "INFERENCE_PRECISION_HINT": "f32",
        "EXECUTION_MODE_HINT": "ACCURACY",
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
    }


def compile_for_cpu(
    export: Callable[[Path], None],
    name: str,
    threads: int | None = None,
    *,
    module: nn.Module,
    signature: object,
) -> Any:
    """An ``openvino.CompiledModel`` of the ONNX file ``export(path)`` writes, compiled with
    ``cpu_config``. ``module`` (what ``export`` exports) and ``signature`` (its input
    shapes and whatever else the export reads) key the disk cache (``ir_cache``): a later
    process reads the saved model instead of exporting again."""
    import openvino as ov

    core = ov.Core()
    key = ir_cache.entry_key(name, module, signature)
    model = ir_cache.cached_model(core, name, key, lambda: _exported(core, export, name))
    return core.compile_model(model, "CPU", cpu_config(threads))


def _exported(core: Any, export: Callable[[Path], None], name: str) -> Any:
    """The ``openvino.Model`` of ``export``'s ONNX file, exported into a temporary folder
    (gone once OpenVINO has read it)."""
    with tempfile.TemporaryDirectory(prefix="brats-goat-onnx-") as tmp:
        path = Path(tmp) / f"{name}.onnx"
        export(path)
        return core.read_model(str(path))


def copied(result: Any) -> torch.Tensor:
    """The first output of an inference request as a tensor of its own: the request reuses
    its output buffer on the next call."""
    return torch.from_numpy(np.array(result[0], dtype=np.float32, copy=True))


class OpenVINONetwork:
    """The MViT-AE compiled by OpenVINO for the CPU; called like the torch module."""

    def __init__(self, model: MViTAE, threads: int | None = None) -> None:
        self.cfg = model.cfg
        model = model.float().eval()
        self.compiled = compile_for_cpu(
            lambda path: export_onnx(model, path),
            "mvitae",
            threads,
            module=model,
            signature=(model.cfg, EXPORT_BATCH),
        )
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)]
        if self.cfg.modality_mask:
            if present is None:
                present = torch.ones(x.shape[0], self.cfg.in_channels)
            inputs.append(np.ascontiguousarray(present.detach().cpu().numpy(), dtype=np.float32))
        return copied(self.request.infer(inputs))


def export_image_encoder(encoder: nn.Module, size: int, path: Path) -> None:
    """Write a SAM-family image encoder (float32, eval) as ONNX for one (1, 3, size, size)
    image. The batch is static: TinyViT's reshapes are traced with the batch baked in, and
    OpenVINO fails on a dynamic batch axis at batch 2. Traced without autograd: with it,
    LiteMedSAM's export peaked at 2.8 GB RSS against 0.8 GB. (Not so the MViT-AE: without
    autograd its transformer layers take a fused path that has no ONNX export.)"""
    with torch.no_grad():
        legacy_export(encoder.float().eval(), (torch.zeros(1, 3, size, size),), path, ["x"])


class OpenVINOImageEncoder:
    """A SAM-family image encoder compiled by OpenVINO for the CPU, one image per request
    (the export's static batch); called like the torch module on a (B, 3, S, S) batch."""

    def __init__(self, encoder: nn.Module, size: int, threads: int | None = None) -> None:
        export = functools.partial(export_image_encoder, encoder, size)
        signature = (1, 3, size, size)
        self.compiled = compile_for_cpu(
            export, "image-encoder", threads, module=encoder, signature=signature
        )
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.cat([copied(self.request.infer([image[None]])) for image in images])


def openvino_installed() -> bool:
    """Whether the optional packages can be imported: ``openvino``, and ``onnx``, which
    torch's exporter needs to hand the network over."""
    try:
        import onnx  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def fold_batchnorm(model: MViTAE) -> MViTAE:
    """An inference copy whose decoder has each BatchNorm folded into the transposed
    convolution before it: one pass over the activations less (1.13x per batch on the
    2-core CPU, results/forward-runtimes.md), the same function up to float rounding."""
    folded = copy.deepcopy(model).eval()
    layers, out = list(folded.decoder), []
    while layers:
        layer = layers.pop(0)
        if (
            isinstance(layer, nn.ConvTranspose2d)
            and layers
            and isinstance(layers[0], nn.BatchNorm2d)
        ):
            layer = fuse_conv_bn_eval(layer, cast(nn.BatchNorm2d, layers.pop(0)), transpose=True)
        out.append(layer)
    folded.decoder = nn.Sequential(*out)
    return folded


def runtime_that_runs(runtime: str, device: torch.device) -> str:
    """What ``prepare_network`` runs the MViT-AE with for ``runtime`` on ``device``:
    ``openvino`` only when asked for, on a CPU where its packages are installed; ``torch``
    otherwise, ``auto`` included (the run report says which)."""
    if runtime == "openvino" and device.type == "cpu" and openvino_installed():
        return "openvino"
    return "torch"


def encoder_runtime_that_runs(runtime: str, device: torch.device, float32: bool) -> str:
    """What runs a SAM-family image encoder for ``runtime`` on ``device``: ``openvino`` on a
    CPU where its packages are installed, for ``openvino``, and for ``auto`` when the encoder
    would run float32 (OpenVINO runs float32 only; ``--precision bfloat16`` keeps torch);
    ``torch`` otherwise. Reported per case in the refine stats."""
    check_runtime(runtime)
    if runtime == "torch" or device.type != "cpu" or not openvino_installed():
        return "torch"
    return "openvino" if runtime == "openvino" or float32 else "torch"


def check_runtime(runtime: str) -> None:
    """``ValueError`` unless ``runtime`` is one of ``RUNTIMES``."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")


def prepare_network(model: MViTAE, runtime: str, device: torch.device) -> MViTAE | Network:
    """The network ``run_network`` should run for ``runtime`` on ``device``.

    ``openvino`` applies to the CPU only; on a GPU, or where the package is missing, the
    torch module runs and a warning on stderr says so (the labels agree either way).
    """
    check_runtime(runtime)
    if runtime_that_runs(runtime, device) == "openvino":
        return OpenVINONetwork(model)
    warn_fallback(runtime, device, "the MViT-AE")
    return fold_batchnorm(model)


def warn_fallback(runtime: str, device: torch.device, network: str) -> None:
    """Say on stderr why an explicit ``--runtime openvino`` runs ``network`` with torch
    (``auto`` falls back silently: the report says what ran). Call only when it does."""
    if runtime != "openvino":
        return
    if device.type != "cpu":
        _warn(
            f"--runtime {runtime} runs on the CPU only; on the {device.type} device "
            f"{network} runs torch"
        )
    else:
        _warn(
            f"--runtime {runtime}: the openvino and onnx packages are not both installed "
            f"(pip install 'brats-goat[openvino]'); {network} runs torch instead"
        )


def _warn(message: str) -> None:
    print(f"brats-goat: WARNING: {message}", file=sys.stderr)
