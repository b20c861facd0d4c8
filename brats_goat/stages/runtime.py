"""Where the MViT-AE's forward pass runs: eager PyTorch (the reference) or OpenVINO (CPU).

On the 2-core CPU the decoder's transposed convolutions and batch norms at full resolution
take most of the forward pass; OpenVINO fuses them and runs oneDNN's blocked layouts, for
the same output to ~1e-5 (results/forward-runtimes.md). The network is exported once per
process through ONNX (the legacy TorchScript exporter, which needs the ``onnx`` package)
and compiled in float32: OpenVINO would otherwise pick bf16 on CPUs that have it, and CPU
inference here promises the same output for the same input. Torch runs the decoder with
its batch norms folded into the convolutions before them (``fold_batchnorm``).
"""

from __future__ import annotations

import copy
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from brats_goat.model.network import ModelConfig, MViTAE

#: ``InferenceConfig.runtime`` choices (``--runtime``).
RUNTIMES: tuple[str, ...] = ("torch", "openvino")

#: Slices of the example batch the network is exported with (the batch axis is dynamic).
EXPORT_BATCH = 2


class Network(Protocol):
    """What ``reconstruct_volume`` runs: the model's config and its forward pass."""

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
    with warnings.catch_warnings():  # the exporter's own notices are not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["y"],
            dynamic_axes={name: {0: "batch"} for name in [*names, "y"]},
            opset_version=17,
        )


class OpenVINONetwork:
    """The MViT-AE compiled by OpenVINO for the CPU; called like the torch module."""

    def __init__(self, model: MViTAE, threads: int | None = None) -> None:
        import openvino as ov

        self.cfg = model.cfg
        model = model.float().eval()
        core = ov.Core()
        with tempfile.TemporaryDirectory(prefix="brats-goat-onnx-") as tmp:
            path = Path(tmp) / "mvitae.onnx"
            export_onnx(model, path)
            graph = core.read_model(str(path))
            # Deterministic float32, on as many threads as torch would use.
            config: dict[str, Any] = {
                "INFERENCE_PRECISION_HINT": "f32",
                "EXECUTION_MODE_HINT": "ACCURACY",
                "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            }
            self.compiled = core.compile_model(graph, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)]
        if self.cfg.modality_mask:
            if present is None:
                present = torch.ones(x.shape[0], self.cfg.in_channels)
            inputs.append(np.ascontiguousarray(present.detach().cpu().numpy(), dtype=np.float32))
        out = self.request.infer(inputs)
        # Copied: the request reuses its output buffer on the next call.
        return torch.from_numpy(np.array(out[0], dtype=np.float32, copy=True))


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
            layer = fuse_conv_bn_eval(layer, layers.pop(0), transpose=True)
        out.append(layer)
    folded.decoder = nn.Sequential(*out)
    return folded


def runtime_that_runs(runtime: str, device: torch.device) -> str:
    """What ``prepare_network`` runs for ``runtime`` on ``device``: ``openvino`` only on a
    CPU where its packages are installed, ``torch`` otherwise (the run report says which)."""
    if runtime == "openvino" and device.type == "cpu" and openvino_installed():
        return "openvino"
    return "torch"


def prepare_network(model: MViTAE, runtime: str, device: torch.device) -> MViTAE | Network:
    """The network ``reconstruct_volume`` should run for ``runtime`` on ``device``.

    ``openvino`` applies to the CPU only; on a GPU, or where the package is missing, the
    torch module runs and a warning on stderr says so (the labels agree either way).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime_that_runs(runtime, device) == "openvino":
        return OpenVINONetwork(model)
    if runtime == "openvino" and device.type != "cpu":
        _warn(f"--runtime {runtime} runs on the CPU only; the {device.type} device runs torch")
    elif runtime == "openvino":
        _warn(
            f"--runtime {runtime}: the openvino and onnx packages are not both installed "
            "(pip install 'brats-goat[openvino]'); running torch instead"
        )
    return fold_batchnorm(model)


def _warn(message: str) -> None:
    print(f"brats-goat: WARNING: {message}", file=sys.stderr)
