"""Superseded checkpoints: out of weights/, still listed, and a refusal that says how to get
one back from git history."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from brats_goat.model.checkpoint import load_checkpoint, save_checkpoint
from brats_goat.model.manifest import WeightsError, register_in_manifest, resolve_checkpoint
from brats_goat.model.network import MODEL_PRESETS, MViTAE

ROOT = Path(__file__).resolve().parents[2]
REPO_WEIGHTS = ROOT / "weights"
RESTORE = re.compile(r"git show ([0-9a-f]{7,40}):weights/(\S+) > weights/(\S+)")


def _shipped_manifest() -> dict:
    return json.loads((REPO_WEIGHTS / "manifest.json").read_text())


def _folder_with_a_removed_checkpoint(folder: Path, command: str) -> tuple[Path, str]:
    """A manifest with a default and a superseded ``gone.pt`` that left the folder."""
    kept = folder / "kept.pt"
    sha = save_checkpoint(kept, MViTAE(MODEL_PRESETS["tiny"]))
    register_in_manifest(kept, sha, {"command": "test"}, default=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["gone.pt"] = {"sha256": "0" * 64, "removed": {"restore": command}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return kept, sha


def test_asking_for_a_removed_checkpoint_quotes_the_restore_command(tmp_path: Path) -> None:
    command = "git show abc1234:weights/gone.pt > weights/gone.pt"
    kept, sha = _folder_with_a_removed_checkpoint(tmp_path, command)
    gone = tmp_path / "gone.pt"
    with pytest.raises(WeightsError) as err:
        resolve_checkpoint(gone)  # --weights
    assert "superseded" in str(err.value) and command in str(err.value)
    with pytest.raises(WeightsError, match=re.escape(command)):
        load_checkpoint(gone, expected_sha256=None)  # train --init
    assert resolve_checkpoint(tmp_path) == (kept, sha)  # the default is untouched
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["files"]["gone.pt"]["removed"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="weights not found"):
        resolve_checkpoint(gone)  # missing without a record: the plain message


def test_only_the_default_is_tracked_and_each_removed_one_says_where_it_is() -> None:
    manifest = _shipped_manifest()
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "weights/*.pt"], capture_output=True, text=True
    )
    if tracked.returncode == 0:
        assert tracked.stdout.split() == [f"weights/{manifest['default']}"]
    removed = {n: e["removed"] for n, e in manifest["files"].items() if "removed" in e}
    assert removed, "the superseded checkpoints are listed with where they are"
    for name, where in removed.items():
        match = RESTORE.fullmatch(where["restore"])
        assert match and match.group(2) == match.group(3) == name, where
        assert match.group(1) == where["commit"]
        if not (REPO_WEIGHTS / name).exists():  # not restored here by hand
            with pytest.raises(WeightsError, match=re.escape(where["restore"])):
                resolve_checkpoint(REPO_WEIGHTS / name)


def test_the_recorded_commits_hold_the_removed_checkpoints() -> None:
    """Each restore command works: its commit holds the file with the listed sha256."""
    git = ["git", "-C", str(ROOT)]
    shallow = subprocess.run(
        [*git, "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
    )
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip("not a full git clone: the history that holds them is not here")
    for name, entry in _shipped_manifest()["files"].items():
        if "removed" not in entry:
            continue
        spec = f"{entry['removed']['commit']}:weights/{name}"
        blob = subprocess.run([*git, "cat-file", "blob", spec], capture_output=True)
        assert blob.returncode == 0, blob.stderr.decode()
        assert hashlib.sha256(blob.stdout).hexdigest() == entry["sha256"], name
