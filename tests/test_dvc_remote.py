"""DVC remote round trip: push every cached artifact of the pipeline, wipe, pull, compare bytes.

Runs the default pipeline's data stages (env, variants, data) and the report stage in a copy of
the repository, pushes to a local-directory remote, deletes the outputs and the cache, pulls, and
checks that `dvc status` is clean and every file is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = [["data"], ["--single-item", "report"]]  # `dvc repro` targets: every stage up to data, then the report


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(cwd / "src"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def copy_checkout(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of this checkout, as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "copy")


def cached_outputs(repo: Path) -> list[Path]:
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return sorted({Path(o.fs_path) for s in r.index.stages for o in s.outs if o.use_cache and o.exists})


def digests(paths: list[Path], root: Path) -> dict[str, str]:
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_push_wipe_pull_round_trip(tmp_path: Path):
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    repo.mkdir()
    copy_checkout(repo)
    for targets in STAGES:
        dvc(repo, "repro", *targets)
    outs = cached_outputs(repo)
    assert {p.relative_to(repo).as_posix() for p in outs} >= {"build/env/base", "build/data", "reports"}
    before = digests(outs, repo)

    dvc(repo, "remote", "add", "-d", "team", str(remote))
    dvc(repo, "push")
    for path in outs:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    assert json.loads(dvc(repo, "status", "--json")) != {}  # the wipe is visible to DVC

    dvc(repo, "pull")
    assert json.loads(dvc(repo, "status", "--json")) == {}
    assert json.loads(dvc(repo, "status", "--cloud", "--json")) == {}
    assert digests(outs, repo) == before
