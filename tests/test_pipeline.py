"""The whole embedded-default pipeline on a fresh copy of the repository, run once per session (conftest).

`dvc repro` builds the environment, datasets, tiny model, three training stages, evaluation and
reports without a remote (the external inputs in data/ come from `gelab env inputs`); a second
`dvc repro` does nothing; every cached artifact (data/ included) survives a push to a
local-directory remote, a wipe of outputs and cache, and a pull, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import dvc

from gelab.io import read_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(embedded_repo: Path) -> Path:
    """A fresh copy after one full `dvc repro` (conftest: shared with the paper rehearsal's test)."""
    return embedded_repo


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
