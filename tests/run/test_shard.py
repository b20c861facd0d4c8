"""``--shard K/N``: parsing, the split rule, and sharded predict runs joined by merge-reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main
from brats_goat.run.shard import (
    MAX_SHARDS,
    Shard,
    parse_shard,
    select_shard,
    shard_of_report_name,
)


@dataclass
class Item:
    case_id: str


def test_parse_shard_accepts_k_of_n() -> None:
    assert parse_shard("2/4") == Shard(2, 4)
    assert parse_shard(" 1 / 1 ") == Shard(1, 1)
    assert str(parse_shard("3/7")) == "3/7"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/4", "1-based"),
        ("5/4", "between 1 and 4"),
        ("1/0", "at least 1"),
        ("2", "expected K/N"),
        ("a/b", "expected K/N"),
        ("-1/4", "expected K/N"),
        ("", "expected K/N"),
    ],
)
def test_parse_shard_rejects_bad_values(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


def test_shards_partition_the_sorted_cases() -> None:
    ids = [f"BraTS-{cohort}-{n:05d}-000" for cohort in ("MEN", "GLI", "MET") for n in range(7)]
    items = [Item(i) for i in ids]
    for count in (1, 2, 3, 4, 21, 30):
        parts = [select_shard(items, Shard(k, count)) for k in range(1, count + 1)]
        flat = [item.case_id for part in parts for item in part]
        assert sorted(flat) == sorted(ids)  # every case once
        assert len(set(flat)) == len(flat)  # in exactly one shard
        sizes = [len(part) for part in parts]
        assert max(sizes) - min(sizes) <= 1  # balanced
    # The rule, spelled out: position i of the sorted IDs goes to shard (i mod N) + 1.
    ordered = sorted(ids)
    assert [x.case_id for x in select_shard(items, Shard(2, 4))] == ordered[1::4]
    # Cohorts that sort together are spread over the shards.
    first = [x.case_id for x in select_shard(items, Shard(1, 3))]
    assert {i.split("-")[1] for i in first} == {"GLI", "MEN", "MET"}


def test_split_does_not_depend_on_listing_order() -> None:
    items = [Item(f"C-{n:03d}") for n in range(10)]
    shuffled = items[3:] + items[:3]
    for k in (1, 2, 3):
        assert select_shard(items, Shard(k, 3)) == select_shard(shuffled, Shard(k, 3))
    assert select_shard(shuffled, None) == items


def test_report_names_round_trip() -> None:
    assert Shard(2, 4).report_name == "report-shard-2-of-4.json"
    assert shard_of_report_name("report-shard-2-of-4.json") == Shard(2, 4)
    assert shard_of_report_name("report-shard-5-of-4.json") is None
    assert shard_of_report_name("report.json") is None


def _predict(inp: Path, out: Path, weights: Path, *extra: str):
    args = ["predict", str(inp), str(out), "--weights", str(weights), "--quiet", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_sharded_predict_then_merge(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    for n, case_id in enumerate(["C-3", "C-1", "C-2"]):
        case_writer(case_id, seed=n)
    inp, out = tmp_path / "in", tmp_path / "out"
    for k in (1, 2):
        assert _predict(inp, out, tiny_weights, "--shard", f"{k}/2").exit_code == 0
    first = json.loads((out / "report-shard-1-of-2.json").read_text())
    assert first["shard"] == {"index": 1, "count": 2, "cases_total": 3}
    assert [c["case_id"] for c in first["cases"]] == ["C-1", "C-3"]
    assert not (out / "report.json").exists()  # shards never write the run's report
    outputs = sorted(p.name for p in out.glob("*.nii.gz"))
    assert outputs == [f"C-{n}.nii.gz" for n in (1, 2, 3)]

    result = CliRunner().invoke(main, ["merge-reports", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    merged = json.loads((out / "report.json").read_text())
    assert merged["summary"] == {"cases": 3, "succeeded": 3, "failed": 0}
    assert [c["case_id"] for c in merged["cases"]] == ["C-1", "C-2", "C-3"]
    assert [s["index"] for s in merged["shards"]] == [1, 2]
    assert "shard" not in merged
    assert (first["cases_total"], merged["cases_total"], merged["cases_done"]) == (2, 3, 3)
    assert merged["state"] == "finished"


def test_shard_beyond_the_cases_is_an_empty_success(
    tmp_path: Path, case_writer, tiny_weights: Path
) -> None:
    case_writer("ONLY-1")
    out = tmp_path / "out"
    assert _predict(tmp_path / "in", out, tiny_weights, "--shard", "2/2").exit_code == 0
    report = json.loads((out / "report-shard-2-of-2.json").read_text())
    assert report["cases"] == [] and report["shard"]["cases_total"] == 1


def test_bad_shard_is_usage_error(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    case_writer("A-1")
    result = _predict(tmp_path / "in", tmp_path / "out", tiny_weights, "--shard", "3/2")
    assert result.exit_code == 2
    assert "--shard" in result.output and "between 1 and 2" in result.output
    assert not (tmp_path / "out").exists()


def test_shard_count_is_bounded(tmp_path: Path, case_writer, tiny_weights: Path) -> None:
    """Issue 27, item 8: ``--shard 1/99999999999999999999`` was accepted, and merge-reports
    then listed the missing shards without end."""
    with pytest.raises(ValueError, match=f"at most {MAX_SHARDS}"):
        parse_shard(f"1/{MAX_SHARDS + 1}")
    assert parse_shard(f"{MAX_SHARDS}/{MAX_SHARDS}") == Shard(MAX_SHARDS, MAX_SHARDS)
    case_writer("A-1")
    args = ("--shard", "1/99999999999999999999")
    result = _predict(tmp_path / "in", tmp_path / "out", tiny_weights, *args)
    assert result.exit_code == 2 and f"at most {MAX_SHARDS}" in result.output
    assert not (tmp_path / "out").exists()
