"""What DVC tracks, and how: external inputs in data.dvc, the model (not the resume state) per training
stage, reports in git.

- ``data.dvc`` (top level) tracks ``data/`` by content hash: ``data/emoji`` holds the icon font and
  Unicode's emoji list the environment stages draw with (``gelab env inputs`` copies them from the
  system on a fresh clone, so ``dvc repro`` needs no remote); the paper profile's base weights join
  it with ``dvc add data/Qwen2.5-VL-7B-Instruct``. A changed input shows in ``dvc status``.
- A training stage caches ``final/`` (the consolidated model) and its small run record; ``run/``
  (ms-swift's checkpoints with ZeRO-3 shards) is not an output at all: it stays on disk for resuming,
  is never cached, and a clone that pulled ``final/`` is up to date without it.
- ``reports/`` is an uncached output, committed to git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def outs(stage: str) -> dict[str, dict]:
    body = STAGES[stage].get("do", STAGES[stage])
    result = {}
    for out in body.get("outs", []):
        path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
        result[path] = opts or {}
    return result


def deps(stage: str) -> list[str]:
    body = STAGES[stage].get("do", STAGES[stage])
    return [str(d) for d in body.get("deps", [])]


def test_data_dvc_tracks_the_external_inputs_by_content_hash() -> None:
    meta = yaml.safe_load((REPO / "data.dvc").read_text())
    (out,) = meta["outs"]
    assert out["path"] == "data" and out["md5"].endswith(".dir") and out["nfiles"] >= 2
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/data" in ignored and "/reports" not in ignored
    for stage in ("env", "variant"):  # the pages are drawn from data/emoji, which they depend on
        body = STAGES[stage].get("do", STAGES[stage])
        assert "data/emoji" in deps(stage) and "--inputs data/emoji" in " ".join(body["cmd"].split())


def test_training_stages_cache_the_model_not_the_resume_state() -> None:
    for stage, upstream in (("sft", None), ("st_rl", "sft"), ("mt_rl", "st_rl")):
        o = outs(stage)
        base = f"build/checkpoints/{stage}"
        assert set(o) == {f"{base}/final", f"{base}/command.sh", f"{base}/params.json", f"{base}/train.jsonl"}
        assert o[f"{base}/final"].get("cache", True) and not o[f"{base}/final"].get("persist", False)
        assert all(o[p].get("persist") for p in o if not p.endswith("/final"))  # kept while resuming
        if upstream:  # the next stage starts from the model only: a change in run/ never re-runs it
            assert f"build/checkpoints/{upstream}/final" in deps(stage)
            assert f"build/checkpoints/{upstream}" not in deps(stage)
    evaluated = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["checkpoints"]
    assert set(evaluated.values()) == {f"build/checkpoints/{s}/final" for s in ("sft", "st_rl", "mt_rl")}


def test_reports_are_committed_not_cached() -> None:
    report_files = ("paper_comparison.md", "pass_at_k_by_path.png", "training_curves.png")
    assert outs("report") == {f"reports/{name}": {"cache": False} for name in report_files}
    assert outs("view")["reports/cases"] == {"cache": False}  # the report links the case studies
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert "reports/paper_comparison.md" in tracked


def test_no_output_lies_inside_another() -> None:
    paths = [p for s in STAGES for p in outs(s) if "$" not in p] + ["data"]
    for a in paths:
        for b in paths:
            assert a == b or not b.startswith(a.rstrip("/") + "/"), f"{b} lies inside {a}"


def _run(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO / "src"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_a_changed_external_input_shows_in_dvc_status(tmp_path: Path) -> None:
    """A fresh copy (no build, no cache, no remote): inputs filled from the system, then one edited."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode()
    for rel in filter(None, files.split("\0")):
        if (REPO / rel).is_file():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, tmp_path / rel)
    for name in ("data.dvc", "dvc.yaml", ".gitignore"):  # this checkout's versions, committed or not
        shutil.copy2(REPO / name, tmp_path / name)
    _run(tmp_path, "git", "init", "-q")
    _run(tmp_path, sys.executable, "-m", "gelab.cli", "env", "inputs", "--out", "data/emoji")
    status = json.loads(_run(tmp_path, sys.executable, "-m", "dvc", "status", "--json", "data.dvc"))
    if status:  # this machine's font is not the committed one (e.g. Nix's): record it, as `dvc repro` would
        _run(tmp_path, sys.executable, "-m", "dvc", "commit", "-f", "-q", "data.dvc")
    assert json.loads(_run(tmp_path, sys.executable, "-m", "dvc", "status", "--json", "data.dvc")) == {}

    with open(tmp_path / "data" / "emoji" / "emoji-test.txt", "a") as f:
        f.write("# a newer emoji list\n")
    status = json.loads(_run(tmp_path, sys.executable, "-m", "dvc", "status", "--json"))
    assert status["data.dvc"] == [{"changed outs": {"data": "modified"}}]
    for stage in ("env", "variant@image", "variant@noise"):
        changed = {k: v for entry in status[stage] if isinstance(entry, dict) for k, v in entry.items()}
        assert changed["changed deps"].get("data/emoji") == "modified", stage
    assert not any("data/emoji" in json.dumps(status.get(s, [])) for s in ("data", "sft", "report"))


def test_inputs_are_copied_once_and_then_drawn_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gelab.cli import main
    from gelab.env import icons
    from gelab.errors import GelabError

    folder = tmp_path / "data" / "emoji"
    assert main(["env", "inputs", "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [icons.FONT_FILE, icons.TEST_FILE]
    (folder / icons.TEST_FILE).write_text((folder / icons.TEST_FILE).read_text() + "# pulled\n")
    main(["env", "inputs", "--out", str(folder)])
    assert (folder / icons.TEST_FILE).read_text().endswith("# pulled\n")  # never overwritten

    monkeypatch.setenv("GELAB_EMOJI_FONT", os.environ.get("GELAB_EMOJI_FONT", icons.EMOJI_FONT))  # restored after
    monkeypatch.setenv("GELAB_EMOJI_TEST", "/nonexistent")
    icons.use_inputs(folder)  # the pipeline's copies win over the environment
    assert os.environ["GELAB_EMOJI_TEST"] == str((folder / icons.TEST_FILE).resolve())
    assert icons.load_library()  # drawn from the copy
    with pytest.raises(GelabError, match=r"gelab env inputs --out"):
        icons.use_inputs(tmp_path / "empty")
    for cached in (icons.load_library, icons._font, icons.glyph):
        cached.cache_clear()
