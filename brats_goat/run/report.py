"""The run report: one entry per input case, so no case is ever lost silently; written
after every case, and the exit code it makes."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from brats_goat._version import __version__
from brats_goat.io.write import write_text_atomic
from brats_goat.run.shard import Shard

REPORT_NAME = "report.json"
#: Lines around the full report when it is printed into the log (``--print-report``): the
#: JSON between them is exactly what the report file would hold.
REPORT_BEGIN = "----- BEGIN brats-goat report (JSON) -----"
REPORT_END = "----- END brats-goat report -----"
#: ``RunReport.state``: rewritten after every case while ``running``; ``finished`` once
#: every case has its result; ``interrupted`` when a signal (or an unexpected error) ended
#: the run before that, ``stopped_by`` saying which.
STATES = ("running", "finished", "interrupted")


@dataclass
class CaseResult:
    case_id: str
    #: ok | failed | interrupted (the run was stopped during this case; it has no output).
    status: str = "pending"
    input: str = ""
    output: str | None = None
    #: ``predict --continue`` kept an earlier run's valid label map: why (``ok`` cases only;
    #: the earlier run's report holds its score and timings).
    skipped: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    anomaly_score: float | None = None
    #: Per present channel (t2f, t1c): the 99.9th residual percentile over the calibrated
    #: threshold, the healthy subjects' median of it; see docs/cli.md, "abnormality".
    abnormality: dict[str, float] = field(default_factory=dict)
    voxels_per_label: dict[str, int] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    #: Refinement per channel: SAM masks accepted / rejected (by score, by agreement).
    refine: dict[str, Any] | None = None
    #: Share of the brain left out of the normalisation statistics: the bright lesion
    #: (``NormaliseConfig.exclude_z``); 0 on a scan with nothing large and bright.
    normalise_left_out: float | None = None
    #: A case off the model's grid (not 1 mm, or wider than 240 x 240): the input's and the
    #: 1 mm frame's ``shape`` and ``spacing_mm`` it was segmented on (``brats_goat.io.resample``).
    resampled: dict[str, Any] | None = None
    #: A failed case only: the empty label map written in its place
    #: (``--on-case-failure placeholder``, ``brats_goat.run.placeholder``).
    placeholder: str | None = None


@dataclass
class RunReport:
    input: str
    output: str
    method: str
    weights: str | None = None
    weights_sha256: str | None = None
    device: str = "cpu"
    #: Arithmetic of the network's forward pass (``InferenceConfig.precision`` resolved on
    #: this machine): float32, bfloat16, or the runtime that chose it; None: no network.
    precision: str | None = None
    #: oneDNN's CPU code path that ran the network (``brats_goat.device.cpu_isa``, e.g.
    #: AVX512_CORE_BF16, AVX2; capped by ONEDNN_MAX_CPU_ISA): bfloat16 gives other labels on
    #: other paths. None: the network ran on a GPU, or the method runs none.
    cpu_isa: str | None = None
    #: Refinement backend that ran ("none", "litemedsam", "sam-vit_b", ...).
    refine: str = "none"
    version: str = __version__
    torch_version: str = torch.__version__
    host: str = field(default_factory=platform.node)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    config: dict[str, Any] = field(default_factory=dict)
    #: The ``BRATS_GOAT_*`` variables a run reads, as they were set (None: unset); with the
    #: fields above, what ``predict --print-config`` prints (``brats_goat.run.settings``).
    environment: dict[str, str | None] = field(default_factory=dict)
    #: ``{"index": K, "count": N, "cases_total": T}`` when the run is shard K of N.
    shard: dict[str, int] | None = None
    #: One of ``STATES``: a report read at any moment says whether the run is complete.
    state: str = "running"
    #: What ended an ``interrupted`` run: ``SIGTERM``, ``SIGINT`` or the unexpected error.
    stopped_by: str | None = None
    #: Cases this run is to segment (with ``--shard`` its share of ``shard.cases_total``);
    #: the report also gives ``cases_done``, those with a final ok/failed result.
    cases_total: int = 0
    #: Temporary and lock files of earlier runs that were killed, removed at the start.
    stale_files_removed: list[str] = field(default_factory=list)
    #: Label maps in OUTPUT of cases not in INPUT (left by an earlier run): ``{"count": N,
    #: "first": [names]}``, else None. ``evaluate`` would score them (``run.outputs``).
    other_label_maps: dict[str, Any] | None = None
    #: Why the report file could not be written: only ever seen in the printed report.
    report_file_error: str | None = None
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(c.status != "ok" for c in self.cases)

    @property
    def n_done(self) -> int:
        """Cases with a final result (ok or failed): not the interrupted one."""
        return sum(c.status in ("ok", "failed") for c in self.cases)

    @property
    def ok(self) -> bool:
        return self.n_failed == 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            data[key] = value
            if key == "cases_total":
                data["cases_done"] = self.n_done
        data["summary"] = {
            "cases": len(self.cases),
            "succeeded": len(self.cases) - self.n_failed,
            "failed": self.n_failed,
        }
        return data

    @property
    def file_name(self) -> str:
        """``report.json``, or ``report-shard-K-of-N.json`` so shards never overwrite it."""
        if self.shard is None:
            return REPORT_NAME
        return Shard(self.shard["index"], self.shard["count"]).report_name

    def to_json(self) -> str:
        """The report file's text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write the report atomically (it is rewritten after every case); an ``OSError``
        (a full disk) leaves the previous file as it was and no temporary file."""
        return write_text_atomic(self.to_json(), Path(folder) / self.file_name)

    def summary_table(self) -> str:
        """Plain-text table printed at the end of a run."""
        head = (
            f"{'case':<28} {'status':<7} {'score':>6} {'abn':>5} {'NETC':>7} {'SNFH':>8} "
            f"{'ET':>7} {'time s':>7}"
        )
        lines = [head, "-" * len(head)]
        for c in self.cases:
            v = c.voxels_per_label
            score = f"{c.anomaly_score:.2f}" if c.anomaly_score is not None else "-"
            abn = c.abnormality.get("t2f")  # how abnormal against healthy brains
            abn_text = f"{abn:.2f}" if abn is not None else "-"
            total = sum(c.timings_s.values())
            lines.append(
                f"{c.case_id[:28]:<28} {c.status:<7} {score:>6} {abn_text:>5} "
                f"{v.get('1', 0):>7} {v.get('2', 0):>8} {v.get('3', 0):>7} {total:>7.1f}"
            )
        lines.append("-" * len(head))
        lines.append(f"{len(self.cases) - self.n_failed}/{len(self.cases)} cases succeeded")
        skipped = [c.case_id for c in self.cases if c.skipped]
        if skipped:
            lines.append(
                f"{len(skipped)} of them skipped (--continue): the label map of an earlier "
                f"run is valid: {', '.join(skipped[:6])}" + (", ..." if len(skipped) > 6 else "")
            )
        if self.state != "finished":
            lines.append(self.progress_line())
        for c in self.cases:
            if c.error:
                instead = f" [empty placeholder written: {c.placeholder}]" if c.placeholder else ""
                word = "INTERRUPTED" if c.status == "interrupted" else "FAILED"
                lines.append(f"{word} {c.case_id}: {c.error}{instead}")
            for w in c.warnings:
                lines.append(f"warning {c.case_id}: {w}")
        return "\n".join(lines)

    def progress_line(self) -> str:
        """``run interrupted (SIGTERM): 1 of 3 cases done, 1 interrupted, 1 not started``."""
        by = f" ({self.stopped_by})" if self.stopped_by else ""
        line = f"run {self.state}{by}: {self.n_done} of {self.cases_total} cases done"
        interrupted = len(self.cases) - self.n_done
        if interrupted:
            line += f", {interrupted} interrupted"
        not_started = self.cases_total - len(self.cases)
        if not_started > 0:
            line += f", {not_started} not started"
        return line


def save_report(report: RunReport, folder: Path) -> None:
    """Rewrite the report; when that fails (a full disk), say so on stderr, remove the
    previous file (it would claim fewer cases than were run: a stale report is worse than
    none) and keep the error in ``report_file_error``, which makes the exit code 3."""
    path = folder / report.file_name
    report.report_file_error = None
    try:
        report.write(folder)
        return
    except OSError as exc:
        report.report_file_error = f"cannot write the report {path}: {exc}"
    try:
        path.unlink(missing_ok=True)
        what = "the out-of-date report there was removed"
    except OSError as exc:
        what = f"the out-of-date report there could not be removed either ({exc})"
    print(f"brats-goat predict: ERROR: {report.report_file_error}; {what}", file=sys.stderr)


#: Exit code when the report file could not be written (its error is on stderr). The
#: others: 0 every case has its label map, 1 a case failed, 2 a usage error, 128 + the
#: signal's number when a signal stopped the run.
EXIT_NO_REPORT = 3


def exit_status(report: RunReport, placeholders: bool) -> tuple[int, list[str]]:
    """The exit code of a finished run, and what to say of its failures on stderr: 0 all
    cases segmented; 1 a case failed, unless each failed case has its placeholder
    (``--on-case-failure placeholder``, then 0). Failures are named whatever the code."""
    if report.ok:
        return 0, []
    failed = [c for c in report.cases if c.status != "ok"]
    names = ", ".join(c.case_id for c in failed)
    lines = [f"brats-goat predict: {len(failed)} of {len(report.cases)} cases FAILED: {names}"]
    if not placeholders:
        return 1, lines
    missing = [c.case_id for c in failed if not c.placeholder]
    if missing:
        return 1, [*lines, f"brats-goat predict: no output file at all for {', '.join(missing)}"]
    lines.append(
        "brats-goat predict: each failed case has an EMPTY label map (placeholder) in OUTPUT; "
        "exit 0 because every case has its file (--on-case-failure placeholder)"
    )
    return 0, lines
