"""``predict --print-config``: the configuration a run would use, printed without running,
is the header its report carries (issue 28: one configuration a user can see)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_goat.cli.main import main


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_printed_configuration_is_the_reports(
    tmp_path: Path, case_writer, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Options, the checkpoint's settings and the environment all show, and the printed
    JSON is exactly what report.json then holds under the same keys."""
    monkeypatch.setenv("BRATS_GOAT_MAX_CASE_GB", "7")
    case_writer("Case-1")
    inp, out = tmp_path / "in", tmp_path / "out"
    options = ("--weights", tiny_weights, "--precision", "float32", "--batch-size", 3, "-q")
    printed = run("predict", inp, out, *options, "--print-config")
    assert printed.exit_code == 0, printed.output
    assert not out.exists(), "--print-config must not run or create anything"
    config = json.loads(printed.stdout)
    assert config["method"] == "mvitae" and config["weights"].endswith("tiny.pt")
    assert len(config["weights_sha256"]) == 64 and config["precision"] == "float32"
    assert config["config"]["inference"]["batch_size"] == 3
    assert "thresholds_by_subset" in config["config"]["postprocess"]  # the checkpoint's
    assert config["environment"]["BRATS_GOAT_MAX_CASE_GB"] == "7"
    assert config["environment"]["BRATS_GOAT_REFINE"] == "none"  # tests/conftest.py
    assert run("predict", inp, out, *options).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    assert config == {key: report[key] for key in config}


def test_print_config_with_unusable_weights_is_a_usage_error(tmp_path: Path) -> None:
    result = run(
        "predict", tmp_path, tmp_path / "out", "--weights", tmp_path / "no.pt", "--print-config"
    )
    assert result.exit_code == 2 and "no.pt" in result.output
