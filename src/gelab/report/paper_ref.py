"""The ``paper-targets`` git branch: the paper's numbers under this project's metric paths.

Its one commit (child of HEAD, rebuilt on every call) holds HEAD's tree with every file under the
metrics folder and ``dvc.lock`` removed, the targets written as ``metrics/<model>/<kind>.json``, and a
``dvc.yaml`` that only declares those files as metrics. ``dvc metrics diff paper-targets`` then
prints every metric of the workspace beside its paper target (``-`` where the paper has none) and
the change, ours − paper. The working tree and the index are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from gelab.errors import GelabError, quote
from gelab.report.targets import load_targets, target_files

DEFAULT_REF = "paper-targets"


class GitError(GelabError):
    """A git command failed; the message carries git's own."""


def _git(repo: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def _blob(repo: Path, text: str) -> str:
    return _git(repo, "hash-object", "-w", "--stdin", stdin=text)


def ref_dvc_yaml(paths: list[str]) -> str:
    lines = ["# Paper targets as metrics (written by `gelab report paper-rev`; see paper/targets.yaml).",
             "metrics:"]
    return "\n".join(lines + [f"  - {p}" for p in paths]) + "\n"


def make_paper_ref(repo: str | Path = ".", targets_path: str | Path = "paper/targets.yaml",
                   metrics_dir: str = "metrics", ref: str = DEFAULT_REF) -> str:
    """Create or move branch ``ref`` to a commit holding the paper targets; returns its hash."""
    repo = Path(repo)
    targets = load_targets(targets_path)
    head = _git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    if _current_branch(repo) == ref:
        raise GitError(f"branch {quote(ref)} is checked out; switch to your work branch first")
    metrics_dir = metrics_dir.rstrip("/")
    files = target_files(targets, metrics_dir)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", head, env=env)
        _git(repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", metrics_dir, "dvc.lock", "dvc.yaml",
             env=env)
        entries = {path: _blob(repo, json.dumps(data, indent=2) + "\n") for path, data in files.items()}
        entries["dvc.yaml"] = _blob(repo, ref_dvc_yaml(sorted(files)))
        for path, blob in entries.items():
            _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = _git(repo, "write-tree", env=env)
    date = _git(repo, "log", "-1", "--format=%cI", head)
    identity = {"GIT_AUTHOR_NAME": "gelab", "GIT_AUTHOR_EMAIL": "gelab@localhost", "GIT_AUTHOR_DATE": date,
                "GIT_COMMITTER_NAME": "gelab", "GIT_COMMITTER_EMAIL": "gelab@localhost", "GIT_COMMITTER_DATE": date}
    message = (f"Paper targets from {targets_path} as metrics\n\n"
               f"Written by `gelab report paper-rev` on top of {head}.\n"
               "Compare with: dvc metrics diff " + ref + "\n")
    commit = _git(repo, "commit-tree", tree, "-p", head, stdin=message, env=identity)
    _git(repo, "update-ref", f"refs/heads/{ref}", commit)
    return commit


def _current_branch(repo: Path) -> str | None:
    proc = subprocess.run(["git", "-C", str(repo), "symbolic-ref", "-q", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None
