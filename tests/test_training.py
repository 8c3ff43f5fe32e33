"""End to end through stock ms-swift on CPU: SFT (ZeRO-3, resume), ST-RL and MT-RL on a tiny model.

Slow (a few minutes on two cores): each stage starts ms-swift once or twice with a handful of steps.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from msgspec.structs import replace

from gelab.params import LaunchParams, ModelParams, RlParams, SftParams, TinyModelParams
from gelab.train.command import cpu_ranks_args
from gelab.train.config import TrainParams
from gelab.train.resume import checkpoints
from gelab.train.training import run_stage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train")


def _params(data: Path, base: Path, **sft_overrides: object) -> TrainParams:
    launch = LaunchParams(master_port=29561, extra_env={"OMP_NUM_THREADS": "2"})
    sft = SftParams(dataset=str(data / "sft.jsonl"), max_samples=64, learning_rate=2e-3, per_device_batch=2,
                    max_steps=4, save_steps=2, save_total_limit=3, logging_steps=1, max_length=1024,
                    extra_args=["--gradient_checkpointing", "false"])
    sft = replace(sft, **sft_overrides)
    st = RlParams(dataset=str(data / "st_rl.jsonl"), max_samples=8, learning_rate=1e-4, per_device_batch=2,
                  num_generations=2, max_steps=2, save_steps=2, max_completion_length=32, max_length=1024,
                  extra_args=["--gradient_checkpointing", "false"])
    mt = replace(st, dataset=str(data / "mt_rl.jsonl"), rewards=["gelab_episode"], max_turns=3, max_length=4096)
    return TrainParams(model=ModelParams(base=str(base), tiny=TinyModelParams()), launch=launch, sft=sft, st_rl=st,
                       mt_rl=mt)


@pytest.fixture(scope="module")
def tiny(data_dir: Path, workdir: Path) -> Path:
    from gelab.train.tiny_model import build_tiny_model

    out = workdir / "tiny"
    build_tiny_model(TinyModelParams(vocab_learned=512), [data_dir / "sft.jsonl"], out)
    return out


@pytest.fixture(scope="module")
def sft_out(data_dir: Path, tiny: Path, workdir: Path) -> Path:
    out = workdir / "sft"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)  # workdir plays the clone: ms-swift writes absolute paths into it
        run_stage(_params(data_dir, tiny), "sft", str(tiny), out, workdir / "metrics")
    return out


def test_sft_writes_zero3_shards_consolidated_weights_and_metrics(sft_out: Path, workdir: Path) -> None:
    last = checkpoints(sft_out / "run")[-1]
    assert last.name == "checkpoint-4"
    assert list((last / "global_step4").glob("zero_pp_rank_0_mp_rank_00_model_states.pt"))
    command = (sft_out / "command.sh").read_text()
    assert "swift sft" in command and "--deepspeed zero3" in command and "export NPROC_PER_NODE=1" in command
    assert json.loads((sft_out / "params.json").read_text())["sft"]["max_steps"] == 4

    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(sft_out / "final", dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(sft_out / "final")
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id == 512 + 12
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(workdir / "tiny", dtype=torch.float32)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert any("language_model" in n for n in changed), "SFT changed no language-model weight"
    assert not any(".visual." in n and "merger" not in n for n in changed), "the vision tower must stay frozen"

    summary = json.loads((workdir / "metrics" / "sft.json").read_text())
    assert summary["steps"] == 4 and summary["final_loss"] < summary["first_loss"]
    with open(workdir / "metrics" / "sft_steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and all(r["learning_rate"] for r in rows)


def test_no_machine_path_in_the_training_outputs(sft_out: Path, workdir: Path) -> None:
    """ms-swift writes the clone's absolute path into args.json, logging.jsonl and training_args.bin; after
    the run none is left (paths are relative to the clone), so pushed outputs do not name the machine."""
    leaks = [p.relative_to(sft_out) for p in sft_out.rglob("*")
             if p.is_file() and not p.is_symlink() and str(workdir).encode() in p.read_bytes()]
    assert leaks == []
    assert json.loads((sft_out / "run" / "args.json").read_text())["output_dir"] == "sft/run"


def test_a_finished_run_is_not_trained_again(sft_out: Path, data_dir: Path, tiny: Path, workdir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)  # the same clone: plugin paths in the command are relative to it
    before = [c.name for c in checkpoints(sft_out / "run")]
    log = (sft_out / "run" / "logging.jsonl").read_text()
    weights = (sft_out / "final" / "model.safetensors").read_bytes()
    run_stage(_params(data_dir, tiny), "sft", str(tiny), sft_out, workdir / "metrics")
    assert [c.name for c in checkpoints(sft_out / "run")] == before
    assert (sft_out / "run" / "logging.jsonl").read_text() == log  # ms-swift was not started again
    assert (sft_out / "final" / "model.safetensors").read_bytes() == weights


def test_interrupted_sft_resumes_from_its_last_checkpoint(sft_out: Path, data_dir: Path, tiny: Path,
                                                         workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)  # the same clone: plugin paths in the command are relative to it
    shutil.rmtree(sft_out / "run" / "checkpoint-4")  # as if killed after saving checkpoint-2
    run_stage(_params(data_dir, tiny), "sft", str(tiny), sft_out, workdir / "metrics")
    assert "--resume_from_checkpoint" in (sft_out / "command.sh").read_text()
    state = json.loads((sft_out / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    logged = [json.loads(line) for line in (sft_out / "run" / "logging.jsonl").read_text().splitlines()]
    resumed = [int(e["global_step/max_steps"].split("/")[0]) for e in logged if "loss" in e][-2:]
    assert resumed == [3, 4]  # the second run trained steps 3..4 only
    with open(workdir / "metrics" / "sft_steps.csv") as f:  # ... and the step log has each step once
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]
    summary = json.loads((workdir / "metrics" / "sft.json").read_text())
    attempts = json.loads((sft_out / "run" / "gelab_attempts.json").read_text())["attempts"]
    assert summary["attempts"] == len(attempts) >= 2
    assert summary["wall_time_s"] == round(sum(a["wall_time_s"] for a in attempts), 1)


def test_changed_params_start_over_instead_of_resuming(sft_out: Path, data_dir: Path, tiny: Path,
                                                      workdir: Path) -> None:
    out = workdir / "sft_other"
    shutil.copytree(sft_out, out)
    run_stage(_params(data_dir, tiny, max_steps=2, save_steps=2), "sft", str(tiny), out, workdir / "metrics_other")
    assert "--resume_from_checkpoint" not in (out / "command.sh").read_text()
    assert [c.name for c in checkpoints(out / "run")] == ["checkpoint-2"]


def test_st_rl_then_mt_rl_from_the_sft_checkpoint(sft_out: Path, data_dir: Path, tiny: Path,
                                                 workdir: Path) -> None:
    tp = _params(data_dir, tiny)
    st = run_stage(tp, "st_rl", str(sft_out / "final"), workdir / "st_rl", workdir / "metrics")
    for term in ["GelabType", "GelabCoord", "GelabIntent", "GelabFormat"]:
        assert f"rewards/{term}" in st, sorted(st)
    assert "--external_plugins" in (workdir / "st_rl" / "command.sh").read_text()

    mt = run_stage(tp, "mt_rl", str(workdir / "st_rl" / "final"), workdir / "mt_rl", workdir / "metrics")
    assert "rewards/GelabEpisode" in mt and "num_turns" in mt, sorted(mt)
    assert 1 <= mt["num_turns"]["final_mean"] <= 3  # the cap of this run
    # every turn a sample: as many samples as turns played, each logged with its episode, turn and advantage
    assert mt["samples"]["first"] == mt["turns"]["first"] >= mt["episodes"]["first"] == 2  # 1 prompt x 2 generations
    logged = [json.loads(line) for line in (workdir / "mt_rl" / "run" / "completions.jsonl").read_text().splitlines()]
    first = logged[0]
    assert len(first["episode"]) == len(first["turn"]) == len(first["advantages"]) == mt["samples"]["first"]
    assert sorted(first["turn"]) == sorted(k for e in set(first["episode"]) for k in
                                            range(1, first["episode"].count(e) + 1))
    assert (workdir / "mt_rl" / "final" / "model.safetensors").exists()


def test_cpu_rank_flags_only_for_several_cpu_processes() -> None:
    assert cpu_ranks_args(LaunchParams(device="cpu"), 1) == ([], [])
    assert cpu_ranks_args(LaunchParams(device="cuda"), 16) == ([], [])
    flags, plugins = cpu_ranks_args(LaunchParams(device="cpu"), 2)
    assert flags == ["--use_cpu", "true", "--ddp_backend", "gloo"] and plugins[0].endswith("swift_cpu_ranks.py")


def test_sft_on_two_cpu_ranks_shards_zero3_over_both(data_dir: Path, tiny: Path, workdir: Path) -> None:
    """Two processes on one machine: one ZeRO-3 shard per rank, global batch = per-device x accumulation x 2."""
    tp = _params(data_dir, tiny, max_samples=16, max_steps=-1, save_steps=100, grad_accum=2)
    tp = replace(tp, launch=replace(tp.launch, nproc_per_node=2, extra_env={"OMP_NUM_THREADS": "1"}))
    out = workdir / "sft_two_ranks"
    summary = run_stage(tp, "sft", str(tiny), out, workdir / "metrics_two_ranks")
    last = checkpoints(out / "run")[-1]
    shards = sorted(p.name for p in (last / f"global_step{summary['steps']}").glob("zero_pp_rank_*_model_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    state = json.loads((last / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"]) == (2, 1.0)  # 16 rows / (2 x 2 x 2 ranks); one rank: 4 steps
    command = (out / "command.sh").read_text()
    assert "export NPROC_PER_NODE=2" in command and "--use_cpu true" in command and "swift_cpu_ranks.py" in command
    assert (out / "final" / "model.safetensors").exists()


def _node(tp: TrainParams, init: str, out: str, metrics: str, env: dict[str, str], results) -> None:  # noqa: ANN001
    """One node of a multi-node launch (a spawned process): its own NODE_RANK, the shared output folder."""
    import os

    os.environ.update(env)
    try:
        results.put((env["NODE_RANK"], run_stage(tp, "sft", init, out, metrics)))
    except BaseException as exc:  # report, never hang the other node's wait
        results.put((env["NODE_RANK"], repr(exc)))
        raise


def test_sft_as_two_nodes_on_loopback(data_dir: Path, tiny: Path, workdir: Path) -> None:
    """NNODES=2, one CPU process each, rendezvous on 127.0.0.1, one shared folder (as on a shared filesystem).

    Both ranks write their ZeRO-3 shard; only node 0 records the end of the run, consolidates and writes
    the metrics and the run record. Checkpoints are saved in shards (--max_shard_size 100KB), so final/
    is ms-swift's sharded save with its index.
    """
    import multiprocessing
    import time

    from gelab.train.launch import free_port
    from gelab.train.weights import WEIGHTS_INDEX

    tp = _params(data_dir, tiny, max_samples=16, max_steps=-1, save_steps=100, grad_accum=2,
                 extra_args=["--gradient_checkpointing", "false", "--max_shard_size", "100KB"])
    tp = replace(tp, launch=replace(tp.launch, extra_env={"OMP_NUM_THREADS": "1"}))
    out, port = workdir / "sft_two_nodes", str(free_port())
    topology = {"NNODES": "2", "NPROC_PER_NODE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    nodes = []
    for rank in ("0", "1"):
        env = {**topology, "NODE_RANK": rank}
        proc = ctx.Process(target=_node, args=(tp, str(tiny), str(out), str(workdir / f"metrics_node{rank}"),
                                               env, results))
        proc.start()
        nodes.append(proc)
        if rank == "0":  # node 1 joins once node 0 has claimed the folder (REPRODUCE.md §4)
            deadline = time.monotonic() + 120
            while not (out / "run" / "gelab_fingerprint").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
    summaries = dict(results.get(timeout=1200) for _ in nodes)
    for proc in nodes:
        proc.join(timeout=60)
    assert [p.exitcode for p in nodes] == [0, 0], summaries

    last = checkpoints(out / "run")[-1]
    step = summaries["0"]["steps"]
    shards = sorted(p.name for p in (last / f"global_step{step}").glob("zero_pp_rank_*_model_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    state = json.loads((last / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"]) == (2, 1.0)  # 16 rows / (2 x 2 x 2 nodes)

    assert set(summaries["1"]) == {"stage", "node_rank", "wall_time_s"} and summaries["1"]["node_rank"] == 1
    assert not (workdir / "metrics_node1").exists()  # node 1 only trains
    assert json.loads((workdir / "metrics_node0" / "sft.json").read_text())["checkpoint"] == last.name
    assert json.loads((out / "run" / "gelab_finished.json").read_text())["checkpoint"] == last.name
    command = (out / "command.sh").read_text()
    assert "export NNODES=2" in command and "export NODE_RANK=0" in command and "--use_cpu true" in command

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    final = out / "final"
    index = json.loads((final / WEIGHTS_INDEX).read_text())
    names = sorted(set(index["weight_map"].values()))
    assert len(names) >= 2 and not (final / "model.safetensors").exists()  # ms-swift's shards, as saved
    assert all((final / n).read_bytes() == (last / n).read_bytes() for n in names)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(final, dtype=torch.float32)
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32)
    trained = dict(model.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in base.named_parameters() if "language_model" in n)
