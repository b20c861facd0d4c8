"""``merge-reports`` on hand-edited shard reports (issue 17, item 12): a usage error (exit 2)
that names the file and the field, never a KeyError / TypeError / AttributeError traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from brats_goat.run.merge_reports import ShardReportError, merge_folder
from tests.run.test_merge_reports import merge_cli, write_shard


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    report = json.loads(path.read_text())
    change(report)
    path.write_text(json.dumps(report))


def _two_shards(folder: Path) -> tuple[Path, Path]:
    one = write_shard(folder, 1, 2, {"A": "ok", "C": "ok"}, total=3)
    two = write_shard(folder, 2, 2, {"B": "ok"}, total=3)
    return one, two


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["shard"].pop("index"), "field 'shard.index' must be a whole number"),
        (lambda r: r["shard"].update(count="2"), "field 'shard.count' must be a whole number"),
        (lambda r: r["shard"].update(cases_total=None), "'shard.cases_total' must be a whole"),
        (lambda r: r["shard"].update(index=True), "field 'shard.index' must be a whole number"),
        (lambda r: r.pop("cases"), "field 'cases' must be a list"),
        (lambda r: r.update(cases={"B": "ok"}), "field 'cases' must be a list"),
        (lambda r: r["cases"][0].pop("case_id"), "field 'cases[0].case_id' must be a case ID"),
        (lambda r: r["cases"][0].update(case_id=7), "field 'cases[0].case_id' must be a case ID"),
        (lambda r: r["cases"][0].update(case_id="../B"), "'cases[0].case_id' must be a case ID"),
        (lambda r: r["cases"][0].pop("status"), "field 'cases[0].status' must be a string"),
        (lambda r: r["cases"][0].update(error=["x"]), "'cases[0].error' must be a string or null"),
        (lambda r: r["cases"].append("C"), "field 'cases[1]' must be an object"),
        (lambda r: r.update(config=[]), "field 'config' must be an object"),
        (lambda r: r.update(shard=[2, 2]), "is not the report of a --shard run"),
        (lambda r: r.update(cases_total="1"), "field 'cases_total' must be a whole number"),
        (lambda r: r.update(stale_files_removed="x"), "'stale_files_removed' must be a list"),
    ],
    ids=[
        "no-index",
        "count-string",
        "total-null",
        "index-bool",
        "no-cases",
        "cases-dict",
        "no-case-id",
        "case-id-int",
        "case-id-path",
        "no-status",
        "error-list",
        "case-string",
        "config-list",
        "shard-list",
        "cases-total-string",
        "stale-string",
    ],
)
def test_edited_field_is_a_usage_error_naming_file_and_field(
    tmp_path: Path, change, field: str
) -> None:
    _, two = _two_shards(tmp_path)
    _edit(two, change)
    result = merge_cli(tmp_path)
    assert result.exit_code == 2, result.output
    assert str(two) in result.output and field in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "report.json").exists()


def test_edited_shard_index_is_named_correctly(tmp_path: Path) -> None:
    """Today's message was "missing shard report(s) 2/2 (found 2 of 2)"."""
    _, two = _two_shards(tmp_path)
    _edit(two, lambda r: r["shard"].update(index=3))
    with pytest.raises(ShardReportError) as info:
        merge_folder(tmp_path)
    assert str(info.value) == (f"{two}: field 'shard.index' is 3, outside 1..2 ('shard.count')")
    _edit(two, lambda r: r["shard"].update(index=1))
    with pytest.raises(ShardReportError) as info:
        merge_folder(tmp_path)
    assert str(info.value) == (
        f"{two}: the file name says shard 2/2 but field 'shard' says 1/2 "
        "(an edited or renamed report)"
    )


def test_renamed_copies_of_one_shard_are_given_twice(tmp_path: Path) -> None:
    """Reports named on the command line may have any name: the duplicate is still found."""
    one, _ = _two_shards(tmp_path)
    copy = tmp_path / "elsewhere.json"
    copy.write_text(one.read_text())
    result = merge_cli(tmp_path, one, copy)
    assert result.exit_code == 1 and "shard 1/2 given twice" in result.output


def test_not_json_is_a_usage_error(tmp_path: Path) -> None:
    _, two = _two_shards(tmp_path)
    two.write_text('{"shard": ')
    result = merge_cli(tmp_path)
    assert result.exit_code == 2 and f"cannot read shard report {two}" in result.output


def test_untouched_shards_still_merge(tmp_path: Path) -> None:
    _two_shards(tmp_path)
    assert merge_cli(tmp_path).exit_code == 0
