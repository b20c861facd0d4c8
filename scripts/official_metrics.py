"""Score file pairs with the official ``brats-evaluation`` package and print JSON.

Runs in its own virtualenv (panoptica pins numpy<2.3), e.g.::

    python3 -m venv .venv-eval && .venv-eval/bin/pip install brats-evaluation==0.0.10
    .venv-eval/bin/python scripts/official_metrics.py --config GoAT CASE PRED REF [CASE PRED REF...]

It follows the package's own CLI flow (``evaluate_single_exam`` per pair, then the ``seg`` and
``mets`` parsers on the collected JSON) so ``tests/test_evaluate_official.py`` can compare our
numbers with the official ones. Output: ``{case: {region: {...}}}`` where each region holds the
raw panoptica values (``raw``), the ``seg`` summary row and the ``mets`` summary row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path


def _plain(value):
    """numpy scalars/containers -> JSON-able Python (inf/nan kept as floats)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _rows(csv_path: Path) -> dict[str, dict[str, float]]:
    import pandas as pd

    frame = pd.read_csv(csv_path)
    return {str(r["subject_id"]): r.to_dict() for _, r in frame.iterrows()}


def _split(row: dict, region: str, case: str) -> dict[str, float]:
    suffix = f"_{region}"
    return {
        k[: -len(suffix)]: _plain(v) for k, v in row.get(case, {}).items() if k.endswith(suffix)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="GoAT", help="bundled brats_evaluation config name")
    parser.add_argument("--vol-threshold", type=float, default=20.0, help="mets parser default")
    parser.add_argument("--overlap-threshold", type=float, default=0.1, help="mets parser default")
    parser.add_argument("triples", nargs="+", help="CASE PRED REF, repeated")
    args = parser.parse_args()
    if len(args.triples) % 3:
        parser.error("give CASE PRED REF triples")
    triples = [args.triples[i : i + 3] for i in range(0, len(args.triples), 3)]

    # panoptica and the parsers print banners and tables: keep stdout for our JSON only.
    with contextlib.redirect_stdout(sys.stderr):
        from brats_evaluation import (
            config_path,
            evaluate_single_exam,
            parse_mets_results,
            parse_seg_results,
        )
        from panoptica import Panoptica_Evaluator

        evaluator = Panoptica_Evaluator.load_from_config(str(config_path(args.config)))
        results = [evaluate_single_exam(pred, ref, case, evaluator) for case, pred, ref in triples]
        with tempfile.TemporaryDirectory() as tmp:
            raw_json = Path(tmp) / "panoptica.json"
            raw_json.write_text(json.dumps({"metrics": _plain(results), "missings": []}))
            parse_seg_results(str(raw_json), str(Path(tmp) / "seg.csv"))
            parse_mets_results(
                str(raw_json),
                args.vol_threshold,
                args.overlap_threshold,
                str(Path(tmp) / "mets.csv"),
            )
            seg, mets = _rows(Path(tmp) / "seg.csv"), _rows(Path(tmp) / "mets.csv")

    out: dict[str, dict] = {}
    for result in results:
        case = result["subject_name"]
        if "error" in result:
            out[case] = {"error": result["error"]}
            continue
        out[case] = {
            region: {
                "raw": _plain(
                    {
                        k: v
                        for k, v in values.items()
                        if k
                        in (
                            "n_ref_instances",
                            "n_pred_instances",
                            "tp",
                            "fp",
                            "fn",
                            "global_bin_dsc",
                            "global_bin_hd95",
                            "reference_instances",
                        )
                    }
                ),
                "seg": _split(seg, region, case),
                "mets": _split(mets, region, case),
            }
            for region, values in result.items()
            if isinstance(values, dict)
        }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
