"""``merge-reports``: shard reports add up to one run, or the merge says why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.run.merge_reports import MergeError, merge_folder
from brats_goat.run.report import CaseResult, RunReport
from brats_goat.run.shard import MAX_SHARDS, Shard


def write_shard(
    folder: Path,
    index: int,
    count: int,
    cases: dict[str, str],
    *,
    total: int,
    sha: str = "abc",
    outputs: bool = True,
    state: str = "finished",
    precision: str = "float32",
    cpu_isa: str | None = "AVX2",
) -> Path:
    """A shard report as predict writes it at the end of the shard's run (``state``
    finished); ``cases`` maps case ID -> status."""
    folder.mkdir(parents=True, exist_ok=True)
    report = RunReport(
        input="/input",
        output="/output",
        method="mvitae",
        weights_sha256=sha,
        shard=Shard(index, count).to_dict(total),
        state=state,
        cases_total=len(cases),
        precision=precision,
        cpu_isa=cpu_isa,
    )
    for case_id, status in cases.items():
        error = None if status == "ok" else f"case {case_id}: missing modality t2f"
        report.cases.append(CaseResult(case_id=case_id, status=status, error=error))
        if outputs and status == "ok":
            (folder / f"{case_id}.nii.gz").write_bytes(b"label map")
    return report.write(folder)


def merge_cli(*args: Path | str):
    return CliRunner().invoke(main, ["merge-reports", *map(str, args)], catch_exceptions=False)


def test_complete_shards_merge(tmp_path: Path) -> None:
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=3)
    write_shard(tmp_path, 1, 2, {"A": "ok", "C": "ok"}, total=3)
    result = merge_cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "3/3 cases succeeded" in result.output
    merged = json.loads((tmp_path / "report.json").read_text())
    assert [c["case_id"] for c in merged["cases"]] == ["A", "B", "C"]
    assert merged["summary"] == {"cases": 3, "succeeded": 3, "failed": 0}
    assert [(s["index"], s["cases"]) for s in merged["shards"]] == [(1, 2), (2, 1)]
    assert merged["weights_sha256"] == "abc" and merged["output"] == str(tmp_path)


def test_shards_in_separate_folders_merge_by_name(tmp_path: Path) -> None:
    one = write_shard(tmp_path / "s1", 1, 2, {"A": "ok"}, total=2)
    two = write_shard(tmp_path / "s2", 2, 2, {"B": "ok"}, total=2)
    (tmp_path / "all").mkdir()
    assert merge_cli(tmp_path / "all", one, two).exit_code == 0
    assert (tmp_path / "all" / "report.json").is_file()


def test_missing_shard_fails_and_writes_nothing(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 3, {"A": "ok"}, total=3)
    write_shard(tmp_path, 3, 3, {"C": "ok"}, total=3)
    result = merge_cli(tmp_path)
    assert result.exit_code == 1
    assert "1 shard report(s) missing: 2/3 (found 2 of 3)" in result.output
    assert not (tmp_path / "report.json").exists()


def test_case_in_two_shards_fails(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok", "B": "ok"}, total=3)
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=3)
    result = merge_cli(tmp_path)
    assert result.exit_code == 1 and "case B appears twice" in result.output


def test_failed_case_fails_the_merge_but_is_reported(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2)
    write_shard(tmp_path, 2, 2, {"B": "failed"}, total=2)
    result = merge_cli(tmp_path)
    assert result.exit_code == 1
    assert "FAILED B: case B: missing modality t2f" in result.output
    merged = json.loads((tmp_path / "report.json").read_text())
    assert merged["summary"] == {"cases": 2, "succeeded": 1, "failed": 1}


def test_ok_case_without_its_output_file_counts_as_failed(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 1, {"A": "ok"}, total=1, outputs=False)
    result = merge_folder(tmp_path)
    assert not result.ok and "A.nii.gz is missing" in result.failed["A"]


def test_shard_that_stopped_early_fails(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=4)
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=4)
    with pytest.raises(MergeError, match="report 2 cases but saw 4"):
        merge_folder(tmp_path)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"count": 3, "total": 2, "sha": "abc"}, "disagree on the count"),
        ({"count": 2, "total": 5, "sha": "abc"}, "disagree on the cases total"),
        ({"count": 2, "total": 2, "sha": "other"}, "disagree on weights_sha256"),
    ],
)
def test_inconsistent_shards_fail(tmp_path: Path, second: dict, message: str) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2)
    write_shard(
        tmp_path / "x", 2, second["count"], {"B": "ok"}, total=second["total"], sha=second["sha"]
    )
    paths = [tmp_path / "report-shard-1-of-2.json", *sorted((tmp_path / "x").glob("report-*"))]
    with pytest.raises(MergeError, match=message):
        merge_folder(tmp_path, paths)


def test_no_shard_reports_and_unsharded_reports_are_refused(tmp_path: Path) -> None:
    result = merge_cli(tmp_path)
    assert result.exit_code == 1 and "no shard reports" in result.output
    plain = RunReport(input="/i", output="/o", method="mvitae").write(tmp_path)
    with pytest.raises(MergeError, match="not the report of a --shard run"):
        merge_folder(tmp_path, [plain])
    (tmp_path / "report-shard-1-of-1.json").write_text("{truncated")
    with pytest.raises(MergeError, match="cannot read shard report"):
        merge_folder(tmp_path)


def test_reports_in_their_own_folder_merge_with_outputs(tmp_path: Path) -> None:
    """The container's shards: reports in BRATS_GOAT_REPORT_DIR, label maps in /output."""
    reports, outputs = tmp_path / "reports", tmp_path / "out"
    write_shard(reports, 1, 2, {"A": "ok"}, total=2, outputs=False)
    write_shard(reports, 2, 2, {"B": "ok"}, total=2, outputs=False)
    outputs.mkdir()
    (outputs / "A.nii.gz").write_bytes(b"label map")
    # Without --outputs the label maps are looked for next to the reports: B is missing.
    (reports / "A.nii.gz").write_bytes(b"label map")
    result = merge_cli(reports)
    assert result.exit_code == 1 and "FAILED B" in result.output
    result = merge_cli(reports, "--outputs", outputs)
    assert result.exit_code == 1 and "FAILED B" in result.output and "FAILED A" not in result.output
    (outputs / "B.nii.gz").write_bytes(b"label map")
    result = merge_cli(reports, "--outputs", outputs)
    assert result.exit_code == 0, result.output
    merged = json.loads((reports / "report.json").read_text())
    assert merged["summary"]["succeeded"] == 2 and merged["output"] == str(outputs)
    assert sorted(p.name for p in outputs.iterdir()) == ["A.nii.gz", "B.nii.gz"]


def test_merged_run_fields_cover_every_shard(tmp_path: Path) -> None:
    """state, case counts and removed files describe the whole run, not the first shard."""
    write_shard(tmp_path, 1, 2, {"A": "ok", "C": "failed"}, total=3)
    two = write_shard(tmp_path, 2, 2, {"B": "ok"}, total=3)
    report = json.loads(two.read_text())
    report["stale_files_removed"] = [str(tmp_path / ".B.nii.gz.abcdefgh.tmp.nii.gz")]
    two.write_text(json.dumps(report))
    result = merge_folder(tmp_path)
    merged = json.loads(result.path.read_text())
    assert merged["state"] == "finished" and merged["stopped_by"] is None
    assert merged["cases_total"] == 3 and merged["cases_done"] == 3
    assert merged["stale_files_removed"] == report["stale_files_removed"]
    assert merged["report_file_error"] is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    ("state", "stopped_by", "named"),
    [
        ("interrupted", "SIGTERM", "field 'state' is str 'interrupted' (stopped by SIGTERM)"),
        ("running", None, "field 'state' is str 'running'"),
        (None, None, "no 'state' field"),
    ],
)
def test_shard_that_did_not_finish_is_refused(
    tmp_path: Path, state: str | None, stopped_by: str | None, named: str
) -> None:
    """A shard cut short says so in its report; merging it would hide the missing cases."""
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2)
    two = write_shard(tmp_path, 2, 2, {"B": "ok"}, total=2)
    report = json.loads(two.read_text())
    report.update(state=state, stopped_by=stopped_by)
    if state is None:
        del report["state"]
    two.write_text(json.dumps(report))
    result = merge_cli(tmp_path)
    assert result.exit_code == 2, result.output
    assert f"{two}: that shard did not finish: {named}" in result.output
    assert not (tmp_path / "report.json").exists()


def test_shards_in_different_precisions_are_refused(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2, precision="float32")
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=2, precision="bfloat16")
    result = merge_cli(tmp_path)
    assert result.exit_code != 0
    assert "different precisions" in result.output and "'bfloat16'" in result.output
    assert not (tmp_path / "report.json").exists()


def test_bfloat16_shards_on_different_cpu_paths_are_refused(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2, precision="bfloat16", cpu_isa="AVX2")
    write_shard(
        tmp_path, 2, 2, {"B": "ok"}, total=2, precision="bfloat16", cpu_isa="AVX10_1_512_AMX"
    )
    result = merge_cli(tmp_path)
    assert result.exit_code != 0
    assert "different code paths" in result.output and "AVX10_1_512_AMX" in result.output
    assert not (tmp_path / "report.json").exists()


def test_float32_shards_on_different_paths_merge_and_say_so_per_case(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2, cpu_isa="AVX2")
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=2, cpu_isa="AVX512_CORE_BF16")
    result = merge_cli(tmp_path)
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "report.json").read_text())
    ran_on = {c["case_id"]: c["ran_on"]["cpu_isa"] for c in merged["cases"]}
    assert ran_on == {"A": "AVX2", "B": "AVX512_CORE_BF16"}
    assert merged["cpu_isa"] == "AVX2, AVX512_CORE_BF16"


def test_shards_on_one_path_carry_it_without_per_case_noise(tmp_path: Path) -> None:
    write_shard(tmp_path, 1, 2, {"A": "ok"}, total=2, precision="bfloat16")
    write_shard(tmp_path, 2, 2, {"B": "ok"}, total=2, precision="bfloat16")
    assert merge_cli(tmp_path).exit_code == 0
    merged = json.loads((tmp_path / "report.json").read_text())
    assert merged["cpu_isa"] == "AVX2" and merged["precision"] == "bfloat16"
    assert all("ran_on" not in c for c in merged["cases"])


def test_many_missing_shards_are_counted_and_the_first_few_named(tmp_path: Path) -> None:
    """Issue 27, item 8: the message listed every missing shard (and, for an N of 10^20,
    grew without bound)."""
    write_shard(tmp_path, 2, MAX_SHARDS, {"B": "ok"}, total=3)
    with pytest.raises(MergeError) as info:
        merge_folder(tmp_path)
    first = ", ".join(f"{k}/{MAX_SHARDS}" for k in (1, 3, 4, 5, 6))
    assert str(info.value) == (
        f"{MAX_SHARDS - 1} shard report(s) missing: {first}, ... (found 1 of {MAX_SHARDS}); "
        "run those shards, then merge again"
    )


def test_edited_shard_count_beyond_the_bound_is_a_usage_error(tmp_path: Path) -> None:
    path = write_shard(tmp_path, 1, 1, {"A": "ok"}, total=1)
    report = json.loads(path.read_text())
    report["shard"]["count"] = 10**20
    named = tmp_path / "edited.json"
    named.write_text(json.dumps(report))
    result = merge_cli(tmp_path, named)
    assert result.exit_code == 2 and "more than the 10000 shards" in result.output
