"""Forward-pass time of the shipped MViT-AE on the CPU: eager torch against its settings,
ONNX Runtime and OpenVINO (issue 18). Writes results/forward-runtimes.{json,md}.

The machine is shared, so every variant runs once per round, interleaved, and medians are
reported: the ratios to eager torch stay meaningful when absolute seconds are inflated.
The input is what ``reconstruct_volume`` builds for a real case (normalised, fitted, the
brain slices), and every variant's output is compared with eager torch's on it.

    PYTHONPATH=. python experiments/forward_runtimes.py [--case DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brats_goat.conventions import MODALITIES
from brats_goat.io.discover import discover_cases
from brats_goat.io.read import load_case
from brats_goat.model.checkpoint import load_verified
from brats_goat.model.network import MViTAE
from brats_goat.stages.normalise import NormaliseConfig, normalise_case
from brats_goat.stages.reconstruct import network_input, slices_to_run
from brats_goat.stages.runtime import OpenVINONetwork, export_onnx, fold_batchnorm

ROOT = Path(__file__).resolve().parents[1]
#: (x, present) -> reconstruction, all numpy float32.
Run = Callable[[np.ndarray, np.ndarray], np.ndarray]


def case_slices(case_dir: Path, model: MViTAE) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, S, S) brain slices of one real case as ``run_network`` batches them, and the
    (N, C) modality mask it passes."""
    case = discover_cases(case_dir)[0]
    volumes = load_case(case, allow_missing=True)
    normalised, brain, _ = normalise_case(volumes.stack(MODALITIES), NormaliseConfig())
    z = slices_to_run(brain, 100)
    x = network_input(normalised, z, model.cfg.image_size)
    present = np.array([[m in volumes.present for m in MODALITIES]] * len(z), np.float32)
    return x, present


def torch_run(model: nn.Module, threads: int, mode: str = "no_grad", cl: bool = False) -> Run:
    """Eager torch as ``run_network`` runs it (no_grad), or a variant of it."""
    if cl:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run(x: np.ndarray, present: np.ndarray) -> np.ndarray:
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        if cl:
            xt = xt.contiguous(memory_format=torch.channels_last)
        ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
        with ctx:
            return model(xt, torch.from_numpy(present)).numpy()

    return run


def ort_run(model: MViTAE, threads: int) -> Run:
    """ONNX Runtime on the same export OpenVINO compiles."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp) / "m.onnx")
        session = ort.InferenceSession(
            str(Path(tmp) / "m.onnx"), options, providers=["CPUExecutionProvider"]
        )
    return lambda x, present: session.run(None, {"x": x, "present": present})[0]


def ov_run(model: MViTAE, threads: int) -> Run:
    """The library's OpenVINO network."""
    net = OpenVINONetwork(model, threads)
    return lambda x, p: net(torch.from_numpy(x), torch.from_numpy(p)).numpy()


def timed(make: Callable[[], Run]) -> tuple[Run, float]:
    """The runner and the seconds it took to build (export, compile: per process)."""
    start = time.perf_counter()
    run = make()
    return run, time.perf_counter() - start


def variants(model: MViTAE) -> dict[str, tuple[Callable[[], Run], str]]:
    """name -> (builder, setting). The first is the reference: today's reconstruct."""
    fused = fold_batchnorm(model)
    return {
        "torch": (lambda: torch_run(model, 2), "2 threads, no_grad (today)"),
        "torch-1t": (lambda: torch_run(model, 1), "1 thread, no_grad"),
        "torch-im": (lambda: torch_run(model, 2, "inference_mode"), "2 threads, inference_mode"),
        "torch-cl": (lambda: torch_run(model, 2, cl=True), "2 threads, channels_last"),
        "torch-fusedbn": (lambda: torch_run(fused, 2), "2 threads, BN folded into convT"),
        "onnxruntime": (lambda: ort_run(model, 2), "1.32.0, 2 intra-op threads"),
        "openvino": (lambda: ov_run(model, 2), "2026.4.1, f32, 2 threads"),
        "openvino-1t": (lambda: ov_run(model, 1), "2026.4.1, f32, 1 thread"),
    }


def compare_runtimes(
    model: MViTAE, x: np.ndarray, p: np.ndarray, rounds: int, only: list[str] | None = None
) -> list[dict]:
    """Median seconds (wall and process CPU) per batch, start-up and max abs difference of
    each variant; ``only`` picks variants (the reference, torch, always runs first)."""
    specs = {k: v for k, v in variants(model).items() if k == "torch" or not only or k in only}
    times: dict[str, list[float]] = {k: [] for k in specs}
    startup: dict[str, list[float]] = {k: [] for k in specs}
    cpu: dict[str, list[float]] = {k: [] for k in specs}
    first: dict[str, list[float]] = {k: [] for k in specs}
    diffs: dict[str, float] = {}
    ref = None
    for r in range(rounds):
        for name, (make, _) in specs.items():
            run, built = timed(make)
            startup[name].append(built)
            start = time.perf_counter()
            run(x, p)  # the first call at a batch size prepares kernels for that shape
            first[name].append(time.perf_counter() - start)
            start, start_cpu = time.perf_counter(), time.process_time()
            out = run(x, p)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if name == "torch" and ref is None:
                ref = out
            diffs[name] = max(diffs.get(name, 0.0), float(np.abs(out - ref).max()))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()))
    base = statistics.median(times["torch"])
    return [
        {
            "variant": name,
            "setting": setting,
            "s_per_batch": round(statistics.median(times[name]), 3),
            "ratio_to_torch": round(base / statistics.median(times[name]), 2),
            "cpu_s_per_batch": round(statistics.median(cpu[name]), 3),
            "startup_s": round(statistics.median(startup[name]), 3),
            "first_call_s": round(statistics.median(first[name]), 3),
            "max_abs_diff": diffs[name],
            "all_s": [round(t, 3) for t in times[name]],
        }
        for name, (_, setting) in specs.items()
    ]


def batch_sweep(model: MViTAE, x: np.ndarray, p: np.ndarray, rounds: int) -> list[dict]:
    """Seconds to run all brain slices of the case at each batch size (torch, OpenVINO; 1
    and 2 threads). Each runner is built once and warmed up at every size, as in a run."""
    runs = {
        "torch 2t": torch_run(model, 2),
        "torch 1t": torch_run(model, 1),
        "openvino 2t": ov_run(model, 2),
        "openvino 1t": ov_run(model, 1),
    }
    sizes = [16, 48, len(x)]
    times: dict[tuple[str, int], list[float]] = {(k, b): [] for k in runs for b in sizes}
    for _ in range(rounds + 1):  # the first round is the warm-up
        for (name, size), seconds in times.items():
            start = time.perf_counter()
            for i in range(0, len(x), size):
                runs[name](x[i : i + size], p[i : i + size])
            seconds.append(time.perf_counter() - start)
    return [
        {"runtime": k, "batch": b, "slices": len(x), "s_case": round(statistics.median(v[1:]), 3)}
        for (k, b), v in times.items()
    ]


def markdown(rows: list[dict], sweep: list[dict], meta: dict) -> str:
    """The tables of results/forward-runtimes.md."""
    lines = [
        f"# Forward-pass runtimes on CPU, commit {meta['commit']}",
        "",
        f"Model {meta['weights']}; input: {meta['batch']} brain slices of {meta['case']} as "
        f"reconstruct builds them; {meta['rounds']} interleaved rounds, medians. "
        f"Machine: {meta['cpus']} CPUs, load average {meta['load_before']} before, "
        f"{meta['load_after']} after (shared: CI and other experiments running).",
        "",
        "| runtime | setting | s / 48-slice batch (median) | speed-up vs eager torch "
        "| CPU s / batch | start-up s (per process) | first call s | max abs diff vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['setting']} | {r['s_per_batch']} | {r['ratio_to_torch']} "
            f"| {r['cpu_s_per_batch']} | {r['startup_s']} | {r['first_call_s']} "
            f"| {r['max_abs_diff']:.2e} |"
        )
    if sweep:
        lines += ["", f"All {sweep[0]['slices']} brain slices of the case, by batch size:", ""]
        lines += ["| runtime | batch | s per case (median) |", "|---|---|---|"]
        lines += [f"| {s['runtime']} | {s['batch']} | {s['s_case']} |" for s in sweep]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_case = ROOT.parent / "shared" / "data" / "real" / "BraTS-GLI-00001-000"
    parser.add_argument("--case", type=Path, default=default_case)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the batch-size sweep")
    args = parser.parse_args()
    model, info = load_verified(None)
    x_all, p_all = case_slices(args.case, model)
    mid = max(0, (len(x_all) - args.batch) // 2)
    x, p = x_all[mid : mid + args.batch], p_all[mid : mid + args.batch]
    load_before = round(os.getloadavg()[0], 2)
    rows = compare_runtimes(model, x, p, args.rounds, args.only)
    sweep = [] if args.no_sweep else batch_sweep(model, x_all, p_all, max(1, args.rounds - 3))
    meta = {
        "commit": os.popen("git rev-parse --short HEAD").read().strip(),
        "weights": Path(info["path"]).name,
        "case": args.case.name,
        "batch": len(x),
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "runtimes": rows, "batch_sweep": sweep}
    (args.results / "forward-runtimes.json").write_text(json.dumps(data, indent=1) + "\n")
    (args.results / "forward-runtimes.md").write_text(markdown(rows, sweep, meta))
    print(markdown(rows, sweep, meta))


if __name__ == "__main__":
    main()
