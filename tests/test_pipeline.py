"""The whole embedded-default pipeline on a fresh copy of the repository, run once for this module.

`dvc repro` builds the environment, datasets, tiny model, three training stages, evaluation and
reports without a remote (the external inputs in data/ come from `gelab env inputs`); a second
`dvc repro` does nothing; every cached artifact (data/ included) survives a push to a
local-directory remote, a wipe of outputs and cache, and a pull, byte for byte.
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
from conftest import REPO

from gelab.io import read_jsonl

pytestmark = pytest.mark.slow


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def copy_checkout(dest: Path) -> Path:
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
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy after one full `dvc repro` (the embedded default, end to end)."""
    repo = copy_checkout(tmp_path_factory.mktemp("pipeline") / "repo")
    for stale in ("metrics", "plots"):  # committed results must be regenerated, not inherited
        for f in (repo / stale).rglob("*.json"):
            f.unlink()
        for f in (repo / stale).rglob("*.csv"):
            f.unlink()
    shutil.rmtree(repo / "reports", ignore_errors=True)
    sh(repo, sys.executable, "-m", "gelab.cli", "env", "inputs", "--out", "data/emoji")  # data.dvc's inputs
    dvc(repo, "repro")
    return repo


def test_repro_builds_every_artifact(repo: Path) -> None:
    counts = {p.name: len(read_jsonl(p)) for p in (repo / "build" / "data").glob("*.jsonl")}
    assert counts["sft.jsonl"] == 30888 and counts["static_ood.jsonl"] == 12439 and counts["mt_rl.jsonl"] == 2162
    for stage in ("sft", "st_rl", "mt_rl"):
        final = repo / "build" / "checkpoints" / stage / "final"
        assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()
        summary = json.loads((repo / "metrics" / "train" / f"{stage}.json").read_text())
        assert summary["stage"] == stage and summary["steps"] > 0 and summary["checkpoint"].startswith("checkpoint-")
        for kind in ("static_id", "static_ood", "interactive"):  # evaluation consumed the checkpoint
            metrics = json.loads((repo / "metrics" / stage / f"{kind}.json").read_text())
            assert ("overall" in metrics) if kind != "interactive" else ("strict" in metrics)
    sft = json.loads((repo / "metrics" / "train" / "sft.json").read_text())
    assert sft["final_loss"] <= 0.5 * sft["first_loss"]  # SFT learns: training loss falls by at least half
    report = (repo / "reports" / "paper_comparison.md").read_text()
    assert "SFT" in report and (repo / "reports" / "pass_at_k_by_path.png").is_file()
    assert (repo / "reports" / "site" / "index.html").is_file()  # the viewer (stage view)
    assert "](cases/case_1.png)" in report and (repo / "reports" / "cases" / "case_1.png").is_file()


def test_training_stages_cache_the_model_and_keep_the_resume_state_on_disk(repo: Path) -> None:
    import yaml

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage, upstream in (("sft", None), ("st_rl", "sft"), ("mt_rl", "st_rl")):
        outs = {o["path"] for o in lock[stage]["outs"]}
        assert f"build/checkpoints/{stage}/final" in outs and not any("/run" in o for o in outs)
        assert list((repo / "build" / "checkpoints" / stage / "run").glob("checkpoint-*/global_step*"))
        if upstream:
            assert f"build/checkpoints/{upstream}/final" in {d["path"] for d in lock[stage]["deps"]}


def test_second_repro_does_nothing(repo: Path) -> None:
    out = dvc(repo, "repro")
    assert "Running stage" not in out
    assert dvc(repo, "status").strip().endswith("Data and pipelines are up to date.")


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


def test_push_wipe_pull_round_trip(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    outs = cached_outputs(repo)
    cached = {p.relative_to(repo).as_posix() for p in outs}
    assert cached >= {"data", "build/env/base", "build/data", "build/models/tiny", "build/checkpoints/sft/final",
                      "build/checkpoints/mt_rl/final", "build/checkpoints/sft/command.sh"}
    assert not any(p.startswith("build/checkpoints/sft/run") for p in cached)  # resume state: on disk only
    assert {p for p in cached if p.startswith("reports")} == {"reports/site"}  # tables, plots, cases: in git
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
