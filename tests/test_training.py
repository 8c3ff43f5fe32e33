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
from gelab.train.training import TrainParams, checkpoints, cpu_ranks_args, run_stage

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
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
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


def test_a_finished_run_is_not_trained_again(sft_out: Path, data_dir: Path, tiny: Path, workdir: Path) -> None:
    before = [c.name for c in checkpoints(sft_out / "run")]
    log = (sft_out / "run" / "logging.jsonl").read_text()
    weights = (sft_out / "final" / "model.safetensors").read_bytes()
    run_stage(_params(data_dir, tiny), "sft", str(tiny), sft_out, workdir / "metrics")
    assert [c.name for c in checkpoints(sft_out / "run")] == before
    assert (sft_out / "run" / "logging.jsonl").read_text() == log  # ms-swift was not started again
    assert (sft_out / "final" / "model.safetensors").read_bytes() == weights


def test_interrupted_sft_resumes_from_its_last_checkpoint(sft_out: Path, data_dir: Path, tiny: Path,
                                                         workdir: Path) -> None:
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
