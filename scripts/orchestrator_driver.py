"""Run the official BraTS orchestrator (PyPI ``brats``, pinned in ``.venv-brats``) on our image.

Started by ``scripts/container_test.py`` with ``.venv-brats/bin/python``, once as root and
once as a non-root user, after it has built the image. It only drives ``brats`` the way an
organiser does and records what happened; the checks are made by the container test.

The image is reached through the orchestrator's own configuration: an algorithms file with
our entry (``docker_image`` = the local test image, ``input_name_schema``,
``requires_root``, ``meta.year``) given to ``SegmentationAlgorithmWith4Modalities``, the
class behind ``GoATSegmenter``, whose ``algorithms_file_path`` argument is how ``brats``
loads its own algorithm lists. ``brats.core.docker.run_container`` pulls an image only when
the engine lacks it, so the local tag is used as is; nothing of ``brats`` is patched. Its
logging, off by default, is switched on with its own ``brats.utils.logging.enable``, so
that the log files hold what the container printed.

    .venv-brats/bin/python scripts/orchestrator_driver.py --image IMAGE --single CASE \
        --batch FOLDER --work DIR --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import yaml

#: Our algorithm entry, as it would sit in brats' goat.yml; ``year`` selects the form:
#: 2025+ plain /input and /output, 2024 and earlier MLCube ``infer`` with /mlcube_io*.
ENTRY = {
    "meta": {
        "authors": "brats-goat",
        "paper": "N/A",
        "challenge": "BraTS Generalizability Across Tumors (BraTS-GoAT)",
        "challenge_manuscript": "N/A",
        "rank": "N/A",
    },
    "run_args": {
        "input_name_schema": "BraTS-GLI-{id:05d}-000",
        "requires_root": False,
        # The machine has no GPU: brats refuses an entry that is not CPU-compatible there
        # (with a GPU it requests one whatever this says).
        "cpu_compatible": True,
    },
}
YEARS = (2025, 2024)


def algorithms_file(image: str, folder: Path) -> Path:
    """One entry per year form, all pointing at ``image``."""
    algorithms = {}
    for year in YEARS:
        entry = json.loads(json.dumps(ENTRY))
        entry["meta"]["year"] = year
        entry["run_args"]["docker_image"] = image
        algorithms[f"brats_goat_{year}"] = entry
    path = folder / "algorithms.yml"
    path.write_text(yaml.safe_dump({"algorithms": algorithms}, sort_keys=False))
    return path


def timed(name: str, action) -> dict:
    """Run ``action``; record its wall time and any exception (the orchestrator raises
    ``BraTSContainerException`` when the container fails or its output is short)."""
    start = time.perf_counter()
    record = {"run": name, "uid": os.getuid(), "ok": True, "error": None}
    try:
        action()
    except Exception as exc:
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
    record["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"- {name} as uid {record['uid']}: {'ok' if record['ok'] else 'RAISED'} "
          f"in {record['wall_s']} s", flush=True)  # fmt: skip
    return record


def run_year(segmenter, year: int, single: Path, batch: Path, work: Path) -> list[dict]:
    """``infer_single`` on one case and ``infer_batch`` on a folder, with log files."""
    case = single.name
    inputs = {m: single / f"{case}-{m}.nii.gz" for m in ("t1c", "t1n", "t2f", "t2w")}
    single_out = work / f"single-{year}" / f"{case}.nii.gz"
    batch_out = work / f"batch-{year}"
    runs = [
        timed(
            f"{year} infer_single",
            lambda: segmenter.infer_single(
                **inputs, output_file=single_out, log_file=work / f"single-{year}.log"
            ),
        ),
        timed(
            f"{year} infer_batch",
            lambda: segmenter.infer_batch(
                data_folder=batch, output_folder=batch_out, log_file=work / f"batch-{year}.log"
            ),
        ),
    ]
    runs[0].update(output=str(single_out), log=str(work / f"single-{year}.log"))
    runs[1].update(output=str(batch_out), log=str(work / f"batch-{year}.log"))
    for run in runs:
        run.update(year=year, mode=run["run"].split()[1])
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--single", type=Path, required=True, help="one case folder")
    parser.add_argument("--batch", type=Path, required=True, help="a folder of case folders")
    parser.add_argument("--work", type=Path, required=True, help="writable folder for outputs")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    import docker  # the orchestrator's own client library

    try:
        docker.from_env().ping()
    except Exception as exc:
        print(f"uid {os.getuid()} cannot reach the Docker engine: {exc}", file=sys.stderr)
        return 3
    from brats.constants import Algorithms
    from brats.core.segmentation_algorithms import SegmentationAlgorithmWith4Modalities
    from brats.utils.logging import enable

    # brats disables its own logging on import; an organiser who wants the container's
    # output (our report, our FAILED lines) and brats' warnings in log_file turns it on.
    enable()

    class LocalAlgorithms(Algorithms):  # brats' algorithm keys are members of such an Enum
        Y2025 = "brats_goat_2025"
        Y2024 = "brats_goat_2024"

    path = algorithms_file(args.image, args.work)
    runs = []
    for year, key in zip(YEARS, (LocalAlgorithms.Y2025, LocalAlgorithms.Y2024), strict=True):
        segmenter = SegmentationAlgorithmWith4Modalities(algorithm=key, algorithms_file_path=path)
        runs += run_year(segmenter, year, args.single, args.batch, args.work)
    args.json.write_text(json.dumps({"algorithms_file": str(path), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
