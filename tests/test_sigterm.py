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


# --- a training stage: ms-swift's process tree is stopped, and the run resumes ---------------------

FAKE_SWIFT = r'''#!{python}
"""A stand-in for `swift sft`: like ms-swift's command, it runs the trainer (torchrun) as its child."""
import subprocess, sys
sys.exit(subprocess.run([{python!r}, {trainer!r}, *sys.argv[1:]]).returncode)
'''

FAKE_TRAINER = r'''
"""The trainer under the stand-in: logs a step every 0.3 s and saves a checkpoint every --save_steps."""
import json, os, sys, time
from pathlib import Path

args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1] if name in args else None
out = Path(opt("--output_dir"))
max_steps, save = int(opt("--max_steps")), int(opt("--save_steps"))
resume = opt("--resume_from_checkpoint")
out.mkdir(parents=True, exist_ok=True)
(out / "trainer.pid").write_text(str(os.getpid()))
with open(out / "logging.jsonl", "a") as log:
    for step in range(int(Path(resume).name.split("-")[1]) + 1 if resume else 1, max_steps + 1):
        time.sleep(0.3)
        log.write(json.dumps({"loss": 10.0 + step, "global_step/max_steps": f"{step}/{max_steps}"}) + "\n")
        log.flush()
        if step % save == 0 or step == max_steps:
            ck = out / f"checkpoint-{step}"
            ck.mkdir()
            for name in ("model.safetensors", "config.json"):
                (ck / name).write_text("{}")
            (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    log.write(json.dumps({"train_runtime": 1.0, "global_step/max_steps": f"{max_steps}/{max_steps}"}) + "\n")
'''

TRAIN = r'''
import sys
import gelab.train.launch as launch
import gelab.train.training as training
launch.HEARTBEAT_S = 0.2
training.shutil.which = lambda *a, **k: sys.argv[1]
from gelab.cli import main
sys.exit(main(["train", "sft", "--params", sys.argv[2], "--init", "base", "--out", "build/sft"]))
'''


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_training_stage_stops_the_swift_tree_and_resumes(tmp_path: Path) -> None:
    """Before: exit -15 with no message, and ms-swift and its trainer went on training without gelab."""
    import csv

    import yaml

    root = tmp_path / "clone"
    (root / "base").mkdir(parents=True)
    (root / "base" / "config.json").write_text("{}")
    (root / "data").mkdir()
    (root / "data" / "sft.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sft"].update(dataset="data/sft.jsonl", max_samples=0, max_steps=12, save_steps=3, save_total_limit=5,
                         per_device_batch=2, grad_accum=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    trainer = tmp_path / "trainer.py"
    trainer.write_text(FAKE_TRAINER)
    fake = tmp_path / "swift"
    fake.write_text(FAKE_SWIFT.format(python=sys.executable, trainer=str(trainer)))
    fake.chmod(0o755)
    run = root / "build" / "sft" / "run"
    command = [sys.executable, "-c", TRAIN, str(fake), "params.yaml"]

    proc = subprocess.Popen(command, cwd=root, env=_env(), text=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    log = run / "logging.jsonl"
    code, err = _terminate(proc, lambda: log.exists() and log.read_text().count("\n") >= 5)  # after checkpoint-3
    _check_terminated(code, err, "train")
    pid = int((run / "trainer.pid").read_text())
    assert not _alive(pid)  # the trainer (ms-swift's child) got the signal too
    logged = log.read_text()
    time.sleep(1.0)
    assert log.read_text() == logged  # nothing trains on
    attempts = json.loads((run / "gelab_attempts.json").read_text())["attempts"]
    assert [a["status"] for a in attempts] == ["terminated"]

    again = subprocess.run(command, cwd=root, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "resuming from" in again.stdout, again.stderr[-3000:]
    with open(root / "metrics" / "train" / "sft_steps.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 13))  # each step once
    summary = json.loads((root / "metrics" / "train" / "sft.json").read_text())
    assert summary["steps"] == 12 and summary["attempts"] == 2
