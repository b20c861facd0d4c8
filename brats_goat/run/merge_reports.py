"""Join the reports of ``predict --shard K/N`` runs into one ``report.json``.

Sharded runs have no coordinator, so the merge is where a lost shard, a shard that stopped
early (its report's ``state`` is not ``finished``), a case run twice or shards run with
different weights must come to light: each is an error here, never a silently smaller
report. Case failures are kept in the merged report (as ``predict`` keeps them) and make
the merge fail too. The run-level fields of the merged report (state, case counts, files
removed) are recomputed from all shards, never copied from one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brats_goat.io.write import write_text_atomic
from brats_goat.run.report import REPORT_NAME
from brats_goat.run.shard import MAX_SHARDS, SHARD_REPORT_GLOB, shard_of_report_name

#: Top-level fields that every shard of one run must share: a merged report describes one
#: method, one set of weights and one configuration (``inference`` may differ per machine).
CONSISTENT_FIELDS: tuple[str, ...] = ("method", "weights_sha256", "version")


#: How many missing shards a message names before it gives only their number.
LISTED_SHARDS = 5


class MergeError(Exception):
    """The shard reports do not add up to one complete run."""


class ShardReportError(MergeError):
    """A file that is not a shard report as ``predict`` writes it (hand-edited, truncated,
    another report): a usage error, unlike shards that are valid but do not add up."""


class ReportNotWritten(MergeError):
    """FOLDER cannot take the merged report (read-only, full): nothing was written."""


@dataclass
class MergeResult:
    """The merged report and where it was written."""

    report: dict[str, Any]
    path: Path
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def find_shard_reports(folder: Path) -> list[Path]:
    """Shard reports (``report-shard-K-of-N.json``) directly in ``folder``."""
    return sorted(p for p in folder.glob(SHARD_REPORT_GLOB) if shard_of_report_name(p.name))


def load_shard_report(path: Path) -> dict[str, Any]:
    """One shard report, checked field by field (``check_shard_report``)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ShardReportError(f"cannot read shard report {path}: {exc}") from exc
    check_shard_report(report, path)
    return report


def check_shard_report(report: Any, path: Path) -> None:
    """Every field the merge reads, with its type, so that an edited report is refused with
    the file and the field named instead of a ``KeyError`` or a wrong conclusion."""
    if not isinstance(report, dict):
        raise ShardReportError(f"{path}: expected a JSON object, got {type(report).__name__}")
    shard = report.get("shard")
    if not isinstance(shard, dict):
        raise ShardReportError(f"{path} is not the report of a --shard run (no 'shard' entry)")
    index, count, _ = (_count_field(shard, key, path, "shard.") for key in SHARD_FIELDS)
    if count > MAX_SHARDS:
        raise ShardReportError(
            f"{path}: field 'shard.count' is {count}, more than the {MAX_SHARDS} shards "
            "predict allows (an edited report)"
        )
    if not 1 <= index <= count:
        raise ShardReportError(
            f"{path}: field 'shard.index' is {index}, outside 1..{count} ('shard.count')"
        )
    named = shard_of_report_name(path.name)
    if named is not None and (named.index, named.count) != (index, count):
        raise ShardReportError(
            f"{path}: the file name says shard {named} but field 'shard' says {index}/{count} "
            "(an edited or renamed report)"
        )
    if not isinstance(report.get("config", {}), dict):
        raise ShardReportError(f"{path}: field 'config' must be an object")
    _check_finished(report, path)
    _count_field(report, "cases_total", path)
    if not isinstance(report.get("stale_files_removed", []), list):
        raise ShardReportError(f"{path}: field 'stale_files_removed' must be a list")
    cases = report.get("cases")
    if not isinstance(cases, list):
        raise ShardReportError(f"{path}: field 'cases' must be a list, got {_kind(cases)}")
    for i, case in enumerate(cases):
        _check_case(case, path, f"cases[{i}]")


def _check_finished(report: dict[str, Any], path: Path) -> None:
    """Only a shard that ran to its end may be merged: an interrupted one (a signal, a
    crash) or one still running lacks cases, and its report says so in ``state``."""
    state = report.get("state")
    if state == "finished":
        return
    if state is None:
        why = "no 'state' field (a report of an older brats-goat, or an edited one)"
    else:
        stopped = report.get("stopped_by")
        why = f"field 'state' is {_kind(state)}" + (f" (stopped by {stopped})" if stopped else "")
    raise ShardReportError(
        f"{path}: that shard did not finish: {why}; only finished shards can be merged. "
        "Rerun that shard, then merge again"
    )


#: The fields of a report's ``shard`` entry (``Shard.to_dict``).
SHARD_FIELDS: tuple[str, ...] = ("index", "count", "cases_total")


def _count_field(entry: dict[str, Any], key: str, path: Path, where: str = "") -> int:
    """``entry[key]``, a whole number; ``where`` is the entry's place in the report."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShardReportError(
            f"{path}: field '{where}{key}' must be a whole number, got {_kind(value)}"
        )
    return value


def _check_case(case: Any, path: Path, where: str) -> None:
    """A case entry: a dict with a plain case ID (it names the output file) and a status."""
    if not isinstance(case, dict):
        raise ShardReportError(f"{path}: field '{where}' must be an object, got {_kind(case)}")
    case_id, status = case.get("case_id"), case.get("status")
    if not isinstance(case_id, str) or Path(case_id).name != case_id or case_id in ("", ".."):
        raise ShardReportError(
            f"{path}: field '{where}.case_id' must be a case ID, got {_kind(case_id)}"
        )
    if not isinstance(status, str):
        raise ShardReportError(
            f"{path}: field '{where}.status' must be a string, got {_kind(status)}"
        )
    if not isinstance(case.get("error"), str | None):
        raise ShardReportError(
            f"{path}: field '{where}.error' must be a string or null, got {_kind(case['error'])}"
        )


def _kind(value: Any) -> str:
    """A field's value for a message: missing, or its type and (short) value."""
    if value is None:
        return "nothing (missing or null)"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _check_consistent(reports: dict[Path, dict[str, Any]]) -> None:
    first_path, first = next(iter(reports.items()))
    for path, report in reports.items():
        for key in CONSISTENT_FIELDS:
            if report.get(key) != first.get(key):
                raise MergeError(
                    f"shards disagree on {key}: {first_path.name} has {first.get(key)!r}, "
                    f"{path.name} has {report.get(key)!r}; they are not parts of one run"
                )
        config = {k: v for k, v in report.get("config", {}).items() if k != "inference"}
        first_config = {k: v for k, v in first.get("config", {}).items() if k != "inference"}
        if config != first_config:
            raise MergeError(
                f"shards {first_path.name} and {path.name} ran with different configurations"
            )
        for key in ("count", "cases_total"):
            if report["shard"][key] != first["shard"][key]:
                raise MergeError(
                    f"shards disagree on the {key.replace('_', ' ')}: {first_path.name} says "
                    f"{first['shard'][key]}, {path.name} says {report['shard'][key]} "
                    "(different N, or the shards saw different inputs)"
                )


def _check_arithmetic(reports: dict[Path, dict[str, Any]]) -> bool:
    """Shards whose labels could differ for the machine alone are not one run: a different
    ``precision``, or in bfloat16 a different oneDNN CPU path (``cpu_isa``; bfloat16 moved
    whole tumours to WT Dice 0.49 on AMX). In float32 the paths give the same labels
    (results/precision-agreement-*.md), so shards may differ in path: True then, and the
    merged report names each case's."""
    first_path, first = next(iter(reports.items()))
    for path, report in reports.items():
        if report.get("precision") != first.get("precision"):
            raise MergeError(
                f"shards ran with different precisions: {first_path.name} "
                f"{first.get('precision')!r}, {path.name} {report.get('precision')!r}; their "
                "labels differ for that alone: rerun one with the other's --precision"
            )
    paths = {(r.get("device"), r.get("cpu_isa")) for r in reports.values()}
    if len(paths) > 1 and first.get("precision") not in (None, "float32"):
        named = ", ".join(
            f"{p.name}: {r.get('device')} {r.get('cpu_isa')}" for p, r in reports.items()
        )
        raise MergeError(
            f"shards ran {first.get('precision')} on different code paths ({named}), which "
            "gives different labels: rerun them with --precision float32, or on one kind of "
            "machine"
        )
    return len(paths) > 1


def _check_complete(reports: dict[Path, dict[str, Any]]) -> None:
    count = next(iter(reports.values()))["shard"]["count"]
    seen: dict[int, Path] = {}
    for path, report in reports.items():
        index = report["shard"]["index"]
        if index in seen:
            raise MergeError(f"shard {index}/{count} given twice: {seen[index]} and {path}")
        seen[index] = path
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in seen]
    if missing:
        listed = ", ".join(missing[:LISTED_SHARDS])
        if len(missing) > LISTED_SHARDS:
            listed += ", ..."
        raise MergeError(
            f"{len(missing)} shard report(s) missing: {listed} "
            f"(found {len(seen)} of {count}); run those shards, then merge again"
        )


def merge_reports(
    paths: Sequence[Path], outputs_dir: Path | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged report and ``{case_id: error}`` of every failed case.

    An ``ok`` case's label map is looked for in ``outputs_dir``, by default next to its
    shard's report. Raises ``MergeError`` when a shard is missing or given twice, a case
    appears twice, the shards disagree (N, case total, method, weights, configuration,
    precision, or the CPU path under bfloat16) or a shard stopped early.
    """
    if not paths:
        raise MergeError(f"no shard reports ({SHARD_REPORT_GLOB}) to merge")
    reports = {Path(p): load_shard_report(Path(p)) for p in paths}
    _check_consistent(reports)
    mixed_paths = _check_arithmetic(reports)
    _check_complete(reports)
    cases: dict[str, dict[str, Any]] = {}
    owner: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for path, report in reports.items():
        for case in report.get("cases", []):
            case_id = case["case_id"]
            if case_id in cases:
                raise MergeError(
                    f"case {case_id} appears twice: in {owner[case_id]} and {path} "
                    "(overlapping shards, or one shard run on different inputs)"
                )
            case = dict(case)
            if mixed_paths:
                case["ran_on"] = {k: report.get(k) for k in ("device", "precision", "cpu_isa")}
            output = (outputs_dir or path.parent) / f"{case_id}.nii.gz"
            if case.get("status") == "ok" and not output.is_file():
                case["status"] = "failed"
                case["error"] = f"case {case_id}: the report says ok but {output} is missing"
            if case.get("status") != "ok":
                failed[case_id] = case.get("error") or f"case {case_id}: status {case['status']}"
            cases[case_id], owner[case_id] = case, path
    first = next(iter(reports.values()))
    total = first["shard"]["cases_total"]
    if len(cases) != total:
        raise MergeError(
            f"the shards report {len(cases)} cases but saw {total} in the input: "
            "a shard stopped before its last case (see its report), rerun it"
        )
    merged = {k: v for k, v in first.items() if k not in ("shard", "cases", "summary")}
    merged.update(run_fields(reports, cases))
    merged["device"] = ", ".join(sorted({str(r.get("device")) for r in reports.values()}))
    isas = {r.get("cpu_isa") for r in reports.values()}
    merged["cpu_isa"] = isas.pop() if len(isas) == 1 else ", ".join(sorted(map(str, isas)))
    merged["shards"] = [
        {
            "index": r["shard"]["index"],
            "count": r["shard"]["count"],
            "report": str(p),
            "host": r.get("host"),
            "device": r.get("device"),
            "cpu_isa": r.get("cpu_isa"),
            "started": r.get("started"),
            "cases": len(r.get("cases", [])),
        }
        for p, r in sorted(reports.items(), key=lambda item: item[1]["shard"]["index"])
    ]
    merged["cases"] = [cases[k] for k in sorted(cases)]
    merged["summary"] = {"cases": total, "succeeded": total - len(failed), "failed": len(failed)}
    return merged, failed


def run_fields(
    reports: dict[Path, dict[str, Any]], cases: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The run-level fields of ``RunReport`` for the whole run. Copied from one shard they
    would describe that shard alone (its case count, the files it removed)."""
    stale = [f for r in reports.values() for f in r.get("stale_files_removed") or []]
    return {
        # Every shard is finished (``_check_finished``), so the whole run is.
        "state": "finished",
        "stopped_by": None,
        "cases_total": sum(r["cases_total"] for r in reports.values()),
        "cases_done": sum(c.get("status") in ("ok", "failed") for c in cases.values()),
        "stale_files_removed": [str(f) for f in stale],
        # Only ever set in a printed report; the merge writes its own file or fails.
        "report_file_error": None,
    }


def merge_folder(
    output_dir: Path, reports: Sequence[Path] | None = None, outputs_dir: Path | None = None
) -> MergeResult:
    """Merge ``reports`` (default: the shard reports in ``output_dir``) into its report.json.

    ``outputs_dir``: where the label maps are, when the shard reports were written to a
    report folder of their own (the container's ``BRATS_GOAT_REPORT_DIR``); by default
    next to each shard report. Nothing is written when the shards do not add up
    (``MergeError``); a merge with failed cases is written, like a ``predict`` run with
    failed cases, and is not ``ok``.
    """
    output_dir = Path(output_dir)
    paths = list(reports) if reports else find_shard_reports(output_dir)
    if not paths:
        raise MergeError(f"no shard reports ({SHARD_REPORT_GLOB}) in {output_dir}")
    merged, failed = merge_reports(paths, Path(outputs_dir) if outputs_dir else None)
    merged["output"] = str(outputs_dir or output_dir)
    path = output_dir / REPORT_NAME
    try:
        write_text_atomic(json.dumps(merged, indent=2) + "\n", path)
    except OSError as exc:
        raise ReportNotWritten(
            f"cannot write the merged report {path}: {exc.strerror or exc}; give the user "
            "running merge-reports write permission on that folder, or name the shard "
            "reports and give a writable FOLDER"
        ) from exc
    return MergeResult(report=merged, path=path, failed=failed)
