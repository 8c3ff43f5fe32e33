"""`dvc repro` of an evaluation stage, SIGKILLed mid-run (the whole process group), continues its append
log when run again, as REPRODUCE.md §5 says: DVC keeps the output (``persist: true``), gelab resumes it,
and the result equals an uninterrupted run with no duplicated row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import fresh_copy
from evalkit import write_env_folder

pytestmark = pytest.mark.slow  # runs DVC on a copy of the repository (about half a minute)

STAGE, POLICY = "eval_ref_interactive@random", "random"


def _env(repo: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(repo / "src")}  # the copy's code, not an installed gelab


def test_interrupted_dvc_evaluation_stage_continues_to_the_same_metrics(tmp_path: Path, run_cli) -> None:
    repo = fresh_copy(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["eval"]["attempts"] = 2  # 2,162 tasks x 2 attempts: long enough to be cut, short enough to test
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_env_folder(repo / "build" / "env" / "base")  # reference policies need the structure, not the images
    out = repo / "build" / "eval" / POLICY / "interactive"
    log = out / "trajectories.jsonl"
    first_round = 2162 * 2  # every live episode answers in one call per round

    with open(tmp_path / "dvc-1.log", "wb") as dvc_log:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-s", STAGE], cwd=repo, env=_env(repo),
                                stdout=dvc_log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= first_round:
                os.killpg(proc.pid, signal.SIGKILL)  # dvc, gelab and anything else they started
                break
            time.sleep(0.02)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "dvc-1.log").read_text()[-3000:]
    cut = log.read_bytes()
    kept = cut[:cut.rfind(b"\n") + 1]  # the complete rows written before the kill
    (out / "earlier-output.txt").write_text("a rewrite of the folder would remove this\n")

    rerun = subprocess.run([sys.executable, "-m", "dvc", "repro", "-s", STAGE], cwd=repo, env=_env(repo),
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (out / "earlier-output.txt").exists()  # before: DVC deleted the output and started from zero
    final = log.read_bytes()
    assert final.startswith(kept) and len(final) > len(kept)
    rows = [json.loads(line) for line in final.splitlines()]
    keys = [(r["episode"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys))

    whole = tmp_path / "whole.json"
    run_cli("eval", "interactive", "--params", repo / "params.yaml", "--policy", POLICY, "--env",
            repo / "build" / "env" / "base", "--subtree", params["data"]["test_subtree"],
            "--trajectories", tmp_path / "whole.jsonl", "--out", whole, check=True)
    assert json.loads((repo / "metrics" / POLICY / "interactive.json").read_text()) == json.loads(whole.read_text())
    assert sorted(keys) == sorted((r["episode"], r["step"]) for r in map(json.loads, open(tmp_path / "whole.jsonl")))
