"""`gelab report paper-rev` + plain `dvc metrics diff paper-targets`: ours beside the paper, with Δ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_fixtures import interactive_metrics, static_metrics, write

from gelab.report.paper_ref import GitError, make_paper_ref
from gelab.report.targets import load_targets, target_files

TARGETS = Path(__file__).resolve().parents[1] / "paper" / "targets.yaml"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}

DVC_YAML = """\
stages:
  evaluate:
    cmd: "true"
    metrics:
      - metrics/sft/static_id.json:
          cache: false
      - metrics/oracle/interactive.json:
          cache: false
"""


def run(repo: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, sys.executable, "-m", "dvc", "init", "-q")
    run(repo, sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write(repo / "metrics", "sft", "static_id", static_metrics(edge=90.5, path=80.25, overall=85.0, task_success=33.0,
                                                               ci=2.5))
    write(repo / "metrics", "oracle", "interactive", interactive_metrics(100.0, 100.0, ci=0.0))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "-m", "ours")
    return repo


def test_dvc_metrics_diff_against_paper_targets(repo: Path):
    head = run(repo, "git", "rev-parse", "HEAD")
    run(repo, sys.executable, "-m", "gelab.cli", "report", "paper-rev", "--targets", str(TARGETS))
    diff = json.loads(run(repo, sys.executable, "-m", "dvc", "metrics", "diff", "paper-targets", "--json"))

    ours = json.loads((repo / "metrics/sft/static_id.json").read_text())
    paper = load_targets(TARGETS)["sft"]["static_id"]
    edge = diff["metrics/sft/static_id.json"]["edge"]
    assert edge["old"] == paper.edge and edge["new"] == ours["edge"]
    assert edge["diff"] == pytest.approx(ours["edge"] - paper.edge)
    assert diff["metrics/sft/static_id.json"]["per_path.1.tasks"]["old"] is None  # the paper has no such number
    # every paper target is listed, even where this run has no file yet
    assert set(target_files(load_targets(TARGETS))) <= set(diff)
    assert diff["metrics/gpt-4o/interactive.json"]["strict.pass@k"]["new"] is None
    # our committed numbers for a model the paper lacks never pose as paper numbers
    assert diff["metrics/oracle/interactive.json"]["k"]["old"] is None
    # the intervals beside our numbers ([low, high] arrays) stay out of the diff: point values only
    assert "edge_ci95" in ours and not any("_ci95" in key for file in diff.values() for key in file)

    text = run(repo, sys.executable, "-m", "dvc", "metrics", "diff", "paper-targets")
    line = next(l for l in text.splitlines() if "metrics/sft/static_id.json" in l and " edge " in f" {l} ")
    assert f"{ours['edge'] - paper.edge:.2f}" in line

    # the working tree, the index and HEAD are untouched
    assert run(repo, "git", "status", "--porcelain") == ""
    assert run(repo, "git", "rev-parse", "HEAD") == head


def test_paper_ref_is_rebuilt_deterministically_from_head(repo: Path):
    first = make_paper_ref(repo, TARGETS)
    assert make_paper_ref(repo, TARGETS) == first
    assert run(repo, "git", "rev-parse", "paper-targets^").strip() == run(repo, "git", "rev-parse", "HEAD").strip()


def test_paper_ref_refuses_to_move_a_checked_out_branch(repo: Path):
    make_paper_ref(repo, TARGETS)
    run(repo, "git", "checkout", "-q", "paper-targets")
    with pytest.raises(GitError, match="checked out"):
        make_paper_ref(repo, TARGETS)
