"""SIGTERM mid-run is handled like Ctrl-C by every command: one line ("terminated"), exit 143, worker pools
and child processes stopped, no temporary folder left, earlier outputs untouched; logs kept and resumed.

Each command runs in a subprocess, paused at a point where it is mid-work (a temporary folder written
to, worker processes rendering, a log half written); the test sends SIGTERM there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PAUSED = r'''
import importlib, os, sys, time
from pathlib import Path

module, _, attr = os.environ["PAUSE_AT"].partition(":")
*path, name = attr.split(".")
owner = importlib.import_module(module)
for part in path:
    owner = getattr(owner, part)
real = getattr(owner, name)

def paused(*args, **kwargs):
    result = real(*args, **kwargs)
    Path(os.environ["PAUSE_READY"]).touch()
    time.sleep(120)  # SIGTERM arrives here
    return result

setattr(owner, name, paused)
from gelab.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), **extra}


def _terminate(proc: subprocess.Popen, ready, timeout: float = 120) -> tuple[int, str]:
    """Wait until ``ready()``, send SIGTERM to the command (not its children), return (exit status, stderr)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never got ready (exit {proc.poll()}): {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _paused_run(tmp_path: Path, pause_at: str, *argv: object) -> tuple[int, str]:
    """Run ``gelab ARGV`` paused after the first call of ``pause_at`` (``module:attr``), then SIGTERM it."""
    ready = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, "-c", PAUSED, *map(str, argv)], cwd=tmp_path, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(PAUSE_AT=pause_at, PAUSE_READY=str(ready)))
    return _terminate(proc, ready.exists)


def _check_terminated(code: int, err: str, command: str) -> None:
    lines = [line for line in err.replace("\r", "\n").split("\n") if line.strip()]
    assert code == 143 and lines[-1] == f"gelab {command}: terminated", err[-3000:]
    assert "Traceback" not in err and "Error" not in err, err[-3000:]


def _earlier(folder: Path) -> Path:
    """An earlier output at ``folder``: a marker file that a rewrite of the folder would remove."""
    folder.mkdir(parents=True)
    marker = folder / "earlier-output.txt"
    marker.write_text("written by the earlier, good run\n")
    return marker


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_env_generate(tmp_path: Path) -> None:
    """Before: exit -15 with no message, the workers' BrokenPipeError tracebacks, the temporary folder left."""
    out = tmp_path / "base"
    marker = _earlier(out)
    code, err = _paused_run(tmp_path, "gelab.env.envdir:_save", "env", "generate", "--branching", "5,3,2",
                            "--out", out)  # 51 pages: the two render workers are busy when SIGTERM arrives
    _check_terminated(code, err, "env")
    assert sorted(p.name for p in out.iterdir()) == [marker.name] and _leftovers(out) == []


@pytest.fixture(scope="module")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 pages: page_1 .. page_5 root the five subtrees the data stage needs."""
    from gelab.cli import main

    out = tmp_path_factory.mktemp("sigterm") / "base"
    assert main(["env", "generate", "--branching", "5,1", "--out", str(out)]) == 0
    return out


def test_data_build(small_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    marker = _earlier(out)
    code, err = _paused_run(tmp_path, "gelab.data.datasets:atomic_write_bytes", "data", "build",
                            "--env", small_base, "--out", out)
    _check_terminated(code, err, "data")
    assert sorted(p.name for p in out.iterdir()) == [marker.name] and _leftovers(out) == []


def test_view(small_env, small_logs, tmp_path: Path) -> None:
    base, _ = small_env
    out = tmp_path / "site"
    marker = _earlier(out)
    code, err = _paused_run(tmp_path, "gelab.report.viewer.site:jpeg_bytes", "view", "--env", base.root,
                            "--out", out, *(a for m, log in small_logs.items() for a in ("--run", f"{m}={log}")))
    _check_terminated(code, err, "view")
    assert sorted(p.name for p in out.iterdir()) == [marker.name] and _leftovers(out) == []


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_static_keeps_its_log_and_resumes(tmp_path: Path, run_cli) -> None:
    from evalkit import static_rows, write_env_folder

    env = write_env_folder(tmp_path / "env")
    rows = static_rows(image_root=str(env))[:40]
    samples = tmp_path / "static.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics, predictions = tmp_path / "m.json", tmp_path / "p.jsonl"
    metrics.write_text("earlier metrics\n")
    argv = ["eval", "static", "--policy", "random", "--env", env, "--samples", samples, "--batch-size", 10,
            "--predictions", predictions, "--out", metrics]
    code, err = _paused_run(tmp_path, "gelab.eval.records:AppendLog.write", *argv)
    _check_terminated(code, err, "eval")
    assert [r["id"] for r in _rows(predictions)] == [r["id"] for r in rows[:10]]  # the batch it logged
    assert metrics.read_text() == "earlier metrics\n" and _leftovers(metrics) == []
    run_cli(*argv, check=True)  # resumes
    assert [r["id"] for r in _rows(predictions)] == [r["id"] for r in rows]
    assert json.loads(metrics.read_text())["steps"] == 40


def test_eval_interactive_keeps_its_log_and_resumes(small_env, tmp_path: Path, run_cli) -> None:
    base, _ = small_env
    metrics, log = tmp_path / "m.json", tmp_path / "t.jsonl"
    argv = ["eval", "interactive", "--policy", "random", "--env", base.root, "--subtree", "page_1",
            "--attempts", 2, "--batch-size", 8, "--trajectories", log, "--out", metrics]
    code, err = _paused_run(tmp_path, "gelab.eval.records:AppendLog.write", *argv)
    _check_terminated(code, err, "eval")
    kept = log.read_bytes()
    assert kept.endswith(b"\n") and len(_rows(log)) == 8 and not metrics.exists()  # the first batch's steps
    run_cli(*argv, check=True)  # resumes
    assert log.read_bytes().startswith(kept) and json.loads(metrics.read_text())["episodes"] == 60

