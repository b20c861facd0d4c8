"""Seconds per encoded slice of LiteMedSAM's image encoder on the CPU: eager torch at batch
1, 2 and 4 against OpenVINO (one slice per request), float32 all (issue 18). Writes
results/sam-encoder-runtimes.{json,md}.

The input is what the refine stage encodes: t2f slices of a real case through the refine
window, spread over the brain (random smooth images where the case is absent). Every
variant runs once per round, interleaved, after a warm-up at its batch size; medians are
reported, with the load average, because the 2-core machine is shared. OpenVINO's export
and compile (once per process) are timed on their own, and every variant's embeddings are
compared with torch's at batch 1.

    PYTHONPATH=. python experiments/sam_encoder_runtimes.py [--case DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.stages.normalise import NormaliseConfig, normalise_case
from brats_goat.stages.refine import window
from brats_goat.stages.refine_config import RefineConfig
from brats_goat.stages.runtime import cpu_config, export_image_encoder
from brats_goat.stages.sam_backends import SamFamilyBackend, litemedsam_backend

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
#: name -> (runtime, batch): the variants, the reference first.
VARIANTS: dict[str, tuple[str, int]] = {
    "torch batch 1": ("torch", 1),
    "torch batch 2": ("torch", 2),
    "torch batch 4": ("torch", 4),
    "openvino batch 1": ("openvino", 1),
}


def case_slices(case_dir: Path, count: int) -> tuple[np.ndarray, str]:
    """``count`` [0, 1] t2f slices of the case as the refine stage windows them, spread over
    the brain; random smooth 240 px images when the case is absent. And where they are from."""
    if not case_dir.is_dir():
        rng = np.random.default_rng(0)
        noise = rng.random((count, 240, 240))
        images = np.clip(ndimage.gaussian_filter(noise, (0, 6, 6)) * 4 - 1.5, 0, 1)
        return images.astype(np.float32), "random smooth 240 x 240 images"
    volumes = load_case(discover_cases(case_dir)[0], allow_missing=True)
    normalised, brain, _ = normalise_case(volumes.stack(MODALITIES), NormaliseConfig())
    image = window(normalised[MODALITIES.index("t2f")], brain, RefineConfig.window_percentiles)
    zs = np.flatnonzero(brain.sum(axis=(0, 1)) > 0)
    picked = zs[np.linspace(len(zs) // 5, 4 * len(zs) // 5, count).round().astype(int)]
    return np.stack([image[..., z].T for z in picked]), f"t2f of {case_dir.name}"


def export_and_compile(backend: SamFamilyBackend) -> dict[str, float]:
    """Seconds of the two per-process steps of the OpenVINO encoder, timed apart."""
    import openvino as ov

    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        start = time.perf_counter()
        export_image_encoder(backend.model.image_encoder, backend.input_size, path)
        exported = time.perf_counter()
        core.compile_model(core.read_model(str(path)), "CPU", cpu_config())
        compiled = time.perf_counter()
    return {"export_s": round(exported - start, 3), "compile_s": round(compiled - exported, 3)}


def backends() -> dict[str, SamFamilyBackend]:
    """One LiteMedSAM model behind every variant (the weights are the same object)."""
    shared = litemedsam_backend(CPU, runtime="torch")
    return {
        name: SamFamilyBackend("litemedsam", shared.model, 256, CPU, batch_size=b, runtime=rt)
        for name, (rt, b) in VARIANTS.items()
    }


def measure(images: np.ndarray, rounds: int) -> tuple[list[dict], dict[str, float]]:
    """Per variant: median seconds per slice, CPU seconds per slice, max abs difference of
    its embeddings from torch at batch 1; and OpenVINO's export and compile seconds."""
    runs = backends()
    startup = export_and_compile(runs["openvino batch 1"])
    for name, backend in runs.items():  # warm-up: kernels for the batch shape, compilation
        backend.encode(images[: VARIANTS[name][1]])
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    diffs: dict[str, float] = {}
    reference = None
    for r in range(rounds):
        for name, backend in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            embeddings = backend.encode(images).embeddings
            wall[name].append((time.perf_counter() - start) / len(images))
            cpu[name].append((time.process_time() - start_cpu) / len(images))
            reference = embeddings if reference is None else reference
            diff = float((embeddings - reference).abs().max())
            diffs[name] = max(diffs.get(name, 0.0), diff)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in wall.items()))
    base = statistics.median(wall["torch batch 1"])
    rows = [
        {
            "variant": name,
            "s_per_slice": round(statistics.median(wall[name]), 3),
            "speedup_vs_torch_batch_1": round(base / statistics.median(wall[name]), 2),
            "cpu_s_per_slice": round(statistics.median(cpu[name]), 3),
            "max_abs_diff": diffs[name],
            "all_s_per_slice": [round(t, 3) for t in wall[name]],
        }
        for name in runs
    ]
    return rows, startup


def markdown(rows: list[dict], startup: dict[str, float], meta: dict) -> str:
    """The table of results/sam-encoder-runtimes.md."""
    lines = [
        f"# LiteMedSAM image encoder on the CPU, commit {meta['commit']}",
        "",
        f"{meta['slices']} slices ({meta['input']}), {meta['rounds']} interleaved rounds after "
        f"a warm-up, medians. Machine: {meta['cpus']} CPUs, torch {meta['torch']} on "
        f"{meta['threads']} threads, OpenVINO {meta['openvino']} (f32, ACCURACY, "
        f"{meta['threads']} threads); load average {meta['load_before']} before, "
        f"{meta['load_after']} after.",
        "",
        "| variant | s / slice (median) | speed-up vs torch batch 1 | CPU s / slice "
        "| max abs diff vs torch batch 1 |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['s_per_slice']} | {r['speedup_vs_torch_batch_1']} "
            f"| {r['cpu_s_per_slice']} | {r['max_abs_diff']:.2e} |"
        )
    lines += [
        "",
        f"OpenVINO per process (not per slice): ONNX export {startup['export_s']} s, "
        f"compile {startup['compile_s']} s.",
        "",
        f"Produced by `PYTHONPATH=. python experiments/sam_encoder_runtimes.py --rounds "
        f"{meta['rounds']}`; results/sam-encoder-runtimes.json has every round.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_case = ROOT.parent / "shared" / "data" / "real" / "BraTS-GLI-00001-000"
    parser.add_argument("--case", type=Path, default=default_case)
    parser.add_argument("--slices", type=int, default=RefineConfig.max_slices)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    import openvino

    images, source = case_slices(args.case, args.slices)
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows, startup = measure(images, args.rounds)
    meta = {
        "commit": os.popen("git rev-parse --short HEAD").read().strip(),
        "input": source,
        "slices": len(images),
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "openvino": openvino.__version__.split("-")[0],
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    args.results.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "startup": startup, "variants": rows}
    (args.results / "sam-encoder-runtimes.json").write_text(json.dumps(data, indent=1) + "\n")
    (args.results / "sam-encoder-runtimes.md").write_text(markdown(rows, startup, meta))
    print(markdown(rows, startup, meta))


if __name__ == "__main__":
    main()
