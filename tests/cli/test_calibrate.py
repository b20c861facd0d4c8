"""``brats-goat calibrate``: one subcommand per stored result; arguments without one go to
``thresholds``, so today's command lines keep their meaning."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from brats_goat.cli.main import main


def test_help_lists_a_subcommand_per_stored_result() -> None:
    result = CliRunner().invoke(main, ["calibrate", "--help"])
    assert result.exit_code == 0
    for name in ("thresholds", "intensity", "enhancement", "tumour"):
        assert f"  {name} " in result.output


def test_arguments_without_a_subcommand_are_the_thresholds_command(tmp_path: Path) -> None:
    bare = CliRunner().invoke(main, ["calibrate"])
    named = CliRunner().invoke(main, ["calibrate", "thresholds"])
    assert bare.exit_code == named.exit_code == 2
    assert "Missing argument 'DATA...'" in bare.output
    assert bare.output == named.output
    empty = tmp_path / "empty"
    empty.mkdir()
    option_first = CliRunner().invoke(main, ["calibrate", "--tissue", str(empty), "-o", "x.pt"])
    assert option_first.exit_code == 2 and "no cases found in DATA" in option_first.output
