"""The CLI surface: every command is listed, bad options are usage errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from brats_goat.cli.main import main


def run(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_unknown_method_is_usage_error(tmp_path: Path, case_writer) -> None:
    folder = case_writer("X-1")
    result = run(["predict", folder, tmp_path / "o", "--method", "magic"])
    assert result.exit_code == 2


def test_all_commands_listed() -> None:
    result = run(["--help"])
    for command in ("predict", "train", "synth", "evaluate"):
        assert command in result.output
