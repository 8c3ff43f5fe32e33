"""When a training stage may resume: only with the same command line, rows and starting weights."""

from __future__ import annotations

from pathlib import Path

from gelab.train.resume import fingerprint, folder_digest


def test_fingerprint_covers_command_rows_and_starting_weights(tmp_path: Path) -> None:
    init = tmp_path / "base"
    init.mkdir()
    (init / "config.json").write_text("{}")
    (init / "model.safetensors").write_bytes(bytes(range(256)))
    command = ["swift", "sft", "--model", str(init)]
    stamp = fingerprint(command, b"rows", folder_digest(init))
    assert stamp == fingerprint(command, b"rows", folder_digest(init))
    assert stamp != fingerprint(command, b"other rows", folder_digest(init))
    assert stamp != fingerprint([*command, "--max_steps", "2"], b"rows", folder_digest(init))
    (init / "model.safetensors").write_bytes(bytes(reversed(range(256))))  # same folder, other weights
    assert stamp != fingerprint(command, b"rows", folder_digest(init))


def test_the_fingerprint_covers_the_gelab_code(tmp_path: Path) -> None:
    """A changed plugin (or anything it imports) changes the code digest and so the fingerprint."""
    from gelab.train.resume import code_digest

    pkg = tmp_path / "gelab"
    (pkg / "train").mkdir(parents=True)
    (pkg / "train" / "swift_plugin.py").write_text("REWARD = 1\n")
    (pkg / "notes.txt").write_text("not code")
    before = code_digest(pkg)
    (pkg / "notes.txt").write_text("still not code")
    assert code_digest(pkg) == before
    (pkg / "train" / "swift_plugin.py").write_text("REWARD = 2\n")
    after = code_digest(pkg)
    assert after != before
    assert fingerprint(["swift"], b"rows", "w", before) != fingerprint(["swift"], b"rows", "w", after)


def test_the_fingerprint_does_not_depend_on_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    """The plugins are named relative to the working folder in the command line (and so in command.sh),
    but a run is the same run from any folder; another plugin file is another run."""
    from gelab.train.command import stage_command
    from gelab.train.config import TrainParams

    root = Path(__file__).resolve().parents[1]
    tp = TrainParams.load(root / "params.yaml")
    lines, stamps = {}, {}
    for cwd in (root, tmp_path):  # the fingerprint is taken where the command was made, as run_stage does
        monkeypatch.chdir(cwd)  # two CPU processes: the template, GRPO and CPU-ranks plugins are all named
        lines[cwd] = stage_command(tp, "mt_rl", "/m", "/d.jsonl", "/r", world_size=2)
        stamps[cwd] = fingerprint(lines[cwd], b"rows", "w", "c")
    assert "src/gelab/train/swift_plugin.py" in lines[root] and "src/gelab/train/swift_cpu_ranks.py" in lines[root]
    assert lines[root] != lines[tmp_path]
    assert stamps[root] == stamps[tmp_path]
    other = tmp_path / "swift_plugin.py"  # the same name outside the package: another plugin
    other.write_text("")
    swapped = [str(other) if a.endswith("swift_plugin.py") else a for a in lines[tmp_path]]
    assert fingerprint(swapped, b"rows", "w", "c") != stamps[tmp_path]


def _one_row_sft(tmp_path: Path):  # type: ignore[no-untyped-def]
    """params.yaml's training params with a one-row SFT dataset, and an empty base model folder."""
    import json

    import msgspec

    from gelab.train.config import TrainParams

    init = tmp_path / "base"
    init.mkdir()
    (init / "config.json").write_text("{}")
    rows = tmp_path / "sft.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    tp = TrainParams.load(Path(__file__).resolve().parents[1] / "params.yaml")
    return msgspec.structs.replace(tp, sft=msgspec.structs.replace(tp.sft, dataset=str(rows))), init


def test_a_finished_run_of_other_code_is_trained_again(tmp_path: Path, monkeypatch) -> None:
    """Same command, rows and weights but another gelab code: the finished run is discarded, not reused."""
    import json

    import pytest

    from gelab.train import training

    tp, init = _one_row_sft(tmp_path)
    out = tmp_path / "sft"

    class Launched(Exception):
        pass

    def launch(*args, **kwargs):
        raise Launched

    monkeypatch.setattr(training, "run_attempt", launch)
    for code in ("old code", "new code"):
        monkeypatch.setattr(training, "code_digest", lambda code=code: code)
        if code == "old code":  # a run that finished under the old code
            with pytest.raises(Launched):
                training.run_stage(tp, "sft", str(init), out, tmp_path / "metrics")
            (out / "run" / "checkpoint-2").mkdir()
            stamp = (out / "run" / "gelab_fingerprint").read_text().strip()
            (out / "run" / training.FINISHED).write_text(json.dumps({"fingerprint": stamp, "checkpoint": "checkpoint-2",
                                                                     "wall_time_s": 1.0}))
        else:
            with pytest.raises(Launched):  # trained again ...
                training.run_stage(tp, "sft", str(init), out, tmp_path / "metrics")
            assert not (out / "run" / "checkpoint-2").exists()  # ... from scratch, not resumed


def test_other_nodes_never_discard_a_run(tmp_path: Path, monkeypatch) -> None:
    """A node with NODE_RANK > 0 refuses a stale run folder instead of deleting node 0's work."""
    import pytest

    from gelab.train.config import TrainError
    from gelab.train.training import run_stage

    tp, init = _one_row_sft(tmp_path)
    out = tmp_path / "sft"
    (out / "run" / "checkpoint-2").mkdir(parents=True)
    (out / "run" / "gelab_fingerprint").write_text("another run\n")
    monkeypatch.setenv("NODE_RANK", "1")
    with pytest.raises(TrainError, match="NODE_RANK=0"):
        run_stage(tp, "sft", str(init), out, tmp_path / "metrics")
    assert (out / "run" / "checkpoint-2").is_dir()


# --- logs and summaries across interruptions -----------------------------------------------------

def _entry(step: int, loss: float, elapsed: str, max_steps: int = 12) -> dict:
    """A step entry as ms-swift appends it to logging.jsonl."""
    return {"loss": loss, "learning_rate": 1e-3, "global_step/max_steps": f"{step}/{max_steps}",
            "elapsed_time": elapsed, "remaining_time": "1s", "train_speed(s/it)": 1.0}


def _synthetic_log() -> list[dict]:
    """Three attempts: killed at step 7 (last checkpoint 6), killed at step 10 (checkpoint 9), then to the end.
    Losses of attempt k end in .k so that the test can tell which attempt a row came from."""
    first = [_entry(s, 10 + s + 0.1, f"{10 * s}s") for s in range(1, 8)]
    second = [_entry(s, 10 + s + 0.2, f"{10 * (s - 6)}s") for s in range(7, 11)]
    third = [_entry(s, 10 + s + 0.3, f"{10 * (s - 9)}s") for s in range(10, 13)]
    end = [{"train_runtime": 31.5, "train_samples_per_second": 999.0, "train_loss": 1.0,
            "global_step/max_steps": "12/12", "elapsed_time": "31s"},
           {"last_model_checkpoint": "build/x/run/checkpoint-12", "global_step": 12, "log_history": []}]
    return first + second + third + end


def test_step_log_of_a_twice_resumed_run_has_each_step_once_from_the_surviving_attempt() -> None:
    from gelab.train.logs import attempts_of, step_rows, timeline, train_time

    log = _synthetic_log()
    rows = step_rows(timeline(log))
    assert [r["step"] for r in rows] == list(range(1, 13))  # before: 1..7, 7..10, 10..12 (14 rows for 12 steps)
    assert [round(r["loss"] % 1, 1) for r in rows] == [0.1] * 6 + [0.2] * 3 + [0.3] * 3
    assert len(attempts_of(log)) == 3
    assert train_time(log) == 70 + 40 + 31.5  # killed attempts: their last elapsed_time; the last: train_runtime
    assert step_rows(timeline(log[:7])) == step_rows(log[:7])  # an uninterrupted log is kept as it is


FAKE_SWIFT = r'''#!{python}
"""A stand-in for `swift sft`: logs a step every 0.3 s, saves checkpoints, writes absolute paths as
ms-swift does, and kills its whole process group (gelab included, as SIGKILL of `dvc repro` would)
at the step that `kills.json` names for this attempt."""
import json, os, signal, sys, time
from pathlib import Path

args = sys.argv[1:]
opt = lambda name: args[args.index(name) + 1] if name in args else None
out = Path(opt("--output_dir")).absolute()
max_steps, save = int(opt("--max_steps")), int(opt("--save_steps"))
resume = opt("--resume_from_checkpoint")
first = int(Path(resume).name.split("-")[1]) + 1 if resume else 1
plan = Path(os.environ["FAKE_SWIFT_KILLS"])
kills = json.loads(plan.read_text())
kill_at = kills.pop(0) if kills else None
plan.write_text(json.dumps(kills))
attempt = 3 - len(kills) if kill_at is None else 2 - len(kills)
out.mkdir(parents=True, exist_ok=True)
args_json = json.dumps({{"output_dir": str(out), "logging_dir": str(out / "runs"),
                         "model": str(Path(opt("--model")).absolute())}})
(out / "args.json").write_text(args_json)
start = time.time()
with open(out / "logging.jsonl", "a") as log:
    for step in range(first, max_steps + 1):
        time.sleep(0.3)
        log.write(json.dumps({{"loss": 10 + step + attempt / 10, "global_step/max_steps": f"{{step}}/{{max_steps}}",
                               "elapsed_time": f"{{int(time.time() - start)}}s"}}) + "\n")
        log.flush()
        if step % save == 0 or step == max_steps:
            ck = out / f"checkpoint-{{step}}"
            ck.mkdir()
            for name in ("model.safetensors", "config.json"):
                (ck / name).write_text("{{}}")
            (ck / "args.json").write_text(args_json)
            (ck / "training_args.bin").write_bytes(b"pickled " + str(out).encode())
            (ck / "trainer_state.json").write_text(json.dumps({{"global_step": step, "best_model_checkpoint": str(ck)}}))
        if step == kill_at:
            os.killpg(0, signal.SIGKILL)
    runtime = time.time() - start
    log.write(json.dumps({{"train_runtime": runtime, "train_samples_per_second": 999.0,
                           "global_step/max_steps": f"{{max_steps}}/{{max_steps}}"}}) + "\n")
    log.write(json.dumps({{"last_model_checkpoint": str(out / f"checkpoint-{{max_steps}}"), "log_history": []}}) + "\n")
'''

RUN_STAGE = r'''
import sys
import msgspec
import gelab.train.launch as launch
import gelab.train.training as training
launch.HEARTBEAT_S = 0.2
training.shutil.which = lambda *a, **k: sys.argv[1]
tp = training.TrainParams.load(sys.argv[2])
tp = msgspec.structs.replace(tp, sft=msgspec.structs.replace(tp.sft, dataset="data/sft.jsonl", max_samples=0,
                                                                max_steps=12, save_steps=3, save_total_limit=5,
                                                                per_device_batch=2, grad_accum=1))
training.run_stage(tp, "sft", "base", "build/sft", "metrics/train")
'''


def test_a_run_killed_twice_resumes_to_one_clean_log_and_a_summary_of_every_attempt(tmp_path: Path) -> None:
    """`dvc repro` SIGKILLed twice mid-training (the whole process group, gelab included), then run to the end:
    one CSV row per step, wall time and throughput over all three attempts, and no machine path in the outputs."""
    import csv
    import json
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "clone"
    (root / "base").mkdir(parents=True)
    (root / "base" / "config.json").write_text("{}")
    (root / "data").mkdir()
    (root / "data" / "sft.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    fake = tmp_path / "swift"
    fake.write_text(FAKE_SWIFT.format(python=sys.executable))
    fake.chmod(0o755)
    kills = tmp_path / "kills.json"
    kills.write_text("[7, 10]")
    env = {**os.environ, "FAKE_SWIFT_KILLS": str(kills), "PYTHONPATH": str(repo / "src")}
    codes = []
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", RUN_STAGE, str(fake), str(repo / "params.yaml")], cwd=root,
                              env=env, start_new_session=True, capture_output=True, timeout=120)
        codes.append(proc.returncode)
    assert codes == [-signal.SIGKILL, -signal.SIGKILL, 0], proc.stderr.decode()[-2000:]

    with open(root / "metrics" / "train" / "sft_steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))  # before: 7 + 4 + 3 = 14 rows
    assert [round(float(r["loss"]) % 1, 1) for r in rows] == [0.1] * 6 + [0.2] * 3 + [0.3] * 3
    summary = json.loads((root / "metrics" / "train" / "sft.json").read_text())
    assert summary["steps"] == 12 and summary["attempts"] == 3
    assert summary["wall_time_s"] >= 0.3 * (7 + 4 + 3) * 0.9  # before: only the last attempt (3 steps)
    assert summary["train_samples_per_second"] < 12 * 2 / (0.3 * 12)  # replays cost time; HF's 999 is not used

    out = root / "build" / "sft"
    assert not list(out.rglob("training_args.bin"))
    leaks = [p for p in out.rglob("*") if p.is_file() and str(root).encode() in p.read_bytes()]
    assert leaks == []  # before: args.json, logging.jsonl, trainer_state.json, training_args.bin
    args = json.loads((out / "run" / "args.json").read_text())
    assert args["output_dir"] == "build/sft/run" and args["model"] == "base"


def test_machine_paths_become_relative_and_other_folders_are_left_alone(tmp_path: Path) -> None:
    import json

    from gelab.train.resume import strip_machine_paths

    root = tmp_path / "clone"
    out = root / "build" / "sft"
    out.mkdir(parents=True)
    (out / "args.json").write_text(json.dumps({
        "output_dir": f"{root}/build/sft/run", "cwd": str(root), "sibling": f"{root}2/x", "backup": f"{root}.old/y",
        "text": f"saved in {root}, done"}))
    (out / "training_args.bin").write_bytes(b"pickled " + str(root).encode())
    (out / "weights.safetensors").write_bytes(str(root).encode())  # binary files other than the args pickle: kept
    changed = strip_machine_paths(out, root)
    assert sorted(p.name for p in changed) == ["args.json", "training_args.bin"]
    assert json.loads((out / "args.json").read_text()) == {
        "output_dir": "build/sft/run", "cwd": ".", "sibling": f"{root}2/x", "backup": f"{root}.old/y",
        "text": "saved in ., done"}
    assert not (out / "training_args.bin").exists() and (out / "weights.safetensors").exists()


def test_the_summary_counts_steps_that_fell_between_logging_steps() -> None:
    """logging_steps 5 and 2 steps (the paper rehearsal): ms-swift logs step 1, then only its final entry."""
    from gelab.train.logs import step_rows, summarize

    log = [_entry(1, 0.7, "6s", max_steps=2),
           {"train_runtime": 11.8, "train_samples_per_second": 1.4, "global_step/max_steps": "2/2"}]
    summary = summarize("sft", step_rows(log), log, 47.0, 16)
    assert summary["steps"] == 2 and summary["first_loss"] == summary["final_loss"] == 0.7
    assert summarize("sft", step_rows(log[:1]), log[:1], 47.0, 16)["steps"] == 1  # no final entry yet
