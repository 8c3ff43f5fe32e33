"""The DVC pipeline on a fresh copy of the repository: builds env and data without a remote; a second
``dvc repro`` does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gelab.io import read_jsonl

from conftest import REPO


def _fresh_copy(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            target = dst / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=dst, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dst, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dst, check=True)
    return dst


@pytest.mark.slow
def test_dvc_repro_builds_env_and_data_then_is_up_to_date(tmp_path: Path) -> None:
    repo = _fresh_copy(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = [str(Path(sys.executable).parent / "dvc")]
    first = subprocess.run([*dvc, "repro", "data"], cwd=repo, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    counts = {p.name: len(read_jsonl(p)) for p in (repo / "build" / "data").glob("*.jsonl")}
    assert counts["sft.jsonl"] == 30888 and counts["static_ood.jsonl"] == 12439 and counts["mt_rl.jsonl"] == 2162
    second = subprocess.run([*dvc, "repro", "data"], cwd=repo, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout and "Running stage" not in second.stdout
    status = subprocess.run([*dvc, "status"], cwd=repo, env=env, capture_output=True, text=True)
    assert "changed" not in status.stdout
