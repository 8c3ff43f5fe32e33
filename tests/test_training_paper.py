"""The paper profile (profiles/paper.yaml): SPEC §7 values, and ms-swift parses every command line."""

from __future__ import annotations

import json

from pathlib import Path

import pytest

from gelab.params import ParamsError
from gelab.train.command import stage_command
from gelab.train.config import STAGES, TrainParams
from gelab.train.launch import launch_env

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "profiles" / "paper.yaml"
DEFAULT = REPO / "params.yaml"


def _commands(params_file: Path) -> dict[str, list[str]]:
    tp = TrainParams.load(params_file)
    inits = {"sft": tp.model.base, "st_rl": "build/checkpoints/sft/final", "mt_rl": "build/checkpoints/st_rl/final"}
    return {s: stage_command(tp, s, inits[s], tp.stage(s).dataset, f"build/checkpoints/{s}/run") for s in STAGES}


def _parse(command: list[str]) -> object:
    """ms-swift's own argument dataclasses parse the flags (types, choices, no unknown flag)."""
    from swift.arguments import RLHFArguments, SftArguments
    from swift.utils.utils import _patch_get_type_hints
    from transformers import HfArgumentParser

    assert command[0] == "swift" and command[1] in ("sft", "rlhf")
    cls = SftArguments if command[1] == "sft" else RLHFArguments
    with _patch_get_type_hints():
        parser = HfArgumentParser([cls])
    namespace, unknown = parser.parse_known_args(command[2:])
    assert unknown == [], f"flags ms-swift does not know: {unknown}"
    return namespace


def test_paper_profile_carries_spec_section_7() -> None:
    tp = TrainParams.load(PAPER)
    assert tp.model.base.endswith("Qwen2.5-VL-7B-Instruct")
    assert (tp.launch.nnodes, tp.launch.nproc_per_node, tp.launch.deepspeed) == (2, 8, "zero3")
    assert (tp.launch.torch_dtype, tp.launch.attn_impl, tp.launch.device) == ("bfloat16", "flash_attn", "cuda")
    s = tp.sft
    assert (s.learning_rate, s.lr_scheduler_type, s.per_device_batch, s.grad_accum, s.warmup_ratio, s.epochs) == (
        1e-5, "cosine", 2, 2, 0.05, 1.0)
    assert (s.packing, s.max_length, s.freeze_vit, s.max_samples, s.max_steps) == (True, 10240, True, 0, -1)
    for rl in (tp.st_rl, tp.mt_rl):
        assert (rl.learning_rate, rl.per_device_batch, rl.epochs, rl.num_generations) == (1e-6, 8, 5.0, 8)
        assert (rl.temperature, rl.top_p, rl.top_k, rl.beta, rl.max_samples, rl.max_steps) == (1.2, 1.0, 8, 0.04, 0, -1)
        assert rl.use_vllm
        # release scripts (SPEC §7): 16 GPUs x 8 x 2 = 256 completions = 32 prompts x 8 per optimizer step
        assert (rl.grad_accum, rl.lr_scheduler_type, rl.warmup_ratio) == (2, "cosine", 0.05)
        assert (16 * rl.per_device_batch * rl.grad_accum) // rl.num_generations == 32
    assert (tp.model.max_pixels, tp.launch.dataset_num_proc) == (200704, 8)  # SPEC §1; the profile's own
    assert tp.st_rl.rewards == ["gelab_type", "gelab_coord", "gelab_intent", "gelab_format"]
    assert (tp.mt_rl.rewards, tp.mt_rl.max_turns) == (["gelab_episode"], 12)


@pytest.mark.parametrize("stage", STAGES)
def test_ms_swift_parses_every_paper_command(stage: str) -> None:
    ns = _parse(_commands(PAPER)[stage])
    tp = TrainParams.load(PAPER)
    p = tp.stage(stage)
    assert ns.deepspeed == "zero3" and ns.tuner_type == "full" and ns.freeze_vit is True
    assert ns.check_model is False  # offline: no hub look-up (it retries with back-off without network)
    assert ns.bf16 is True and ns.torch_dtype == "bfloat16" and ns.attn_impl == "flash_attn"
    assert ns.learning_rate == p.learning_rate and ns.per_device_train_batch_size == p.per_device_batch
    assert ns.num_train_epochs == p.epochs and ns.model_type == "qwen2_5_vl" and ns.template == "qwen2_5_vl"
    assert ns.dataset_num_proc == 8
    if stage == "sft":
        assert ns.packing is True and ns.padding_free is True and ns.gradient_accumulation_steps == 2
        assert ns.warmup_ratio == 0.05 and ns.lr_scheduler_type == "cosine"
    else:
        assert ns.rlhf_type == "grpo" and ns.num_generations == 8 and ns.temperature == 1.2
        assert ns.top_k == 8 and ns.top_p == 1.0 and ns.beta == 0.04
        assert ns.use_vllm is True and ns.vllm_mode == "colocate"
        assert ns.gradient_accumulation_steps == 2 and ns.lr_scheduler_type == "cosine" and ns.warmup_ratio == 0.05
        # colocated vLLM sized from the data: one image per prompt, the stage's max_length as its context
        assert ns.vllm_max_model_len == p.max_length and json.loads(ns.vllm_limit_mm_per_prompt) == {"image": 1}
        assert ns.reward_funcs == p.rewards
        assert Path(ns.external_plugins[0]).resolve() == (REPO / "src/gelab/train/swift_plugin.py").resolve()
    if stage == "mt_rl":
        assert ns.multi_turn_scheduler == "gelab_nav" and ns.max_turns == 12


@pytest.mark.parametrize("stage", STAGES)
def test_ms_swift_parses_every_default_command(stage: str) -> None:
    ns = _parse(_commands(DEFAULT)[stage])
    assert ns.deepspeed == "zero3" and ns.bf16 is False and ns.fp16 is False


def test_launch_topology_comes_from_params_unless_the_environment_sets_it() -> None:
    tp = TrainParams.load(PAPER)
    env = launch_env(tp.launch, 200704, base={"PATH": "/bin", "MASTER_ADDR": "10.0.0.1"})
    assert (env["NNODES"], env["NPROC_PER_NODE"], env["NODE_RANK"]) == ("2", "8", "0")
    env = launch_env(tp.launch, 200704, base={"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.2"})
    assert (env["NODE_RANK"], env["MASTER_ADDR"], env["NNODES"]) == ("1", "10.0.0.2", "2")
    assert env["HF_HUB_OFFLINE"] == "1" and env["MAX_PIXELS"] == "200704"
    assert "CUDA_VISIBLE_DEVICES" not in env  # a GPU profile keeps the GPUs visible


def test_missing_paper_weights_name_what_to_put_where(tmp_path: Path) -> None:
    from gelab.train.checks import check_init
    from gelab.train.config import TrainError

    with pytest.raises(TrainError, match=r"model.base: .*Qwen2.5-VL-7B-Instruct.*dvc add data"):
        check_init(str(tmp_path / "data" / "Qwen2.5-VL-7B-Instruct"), "model.base")


def test_one_node_runs_pick_a_free_port_unless_told() -> None:
    import socket

    import msgspec

    tp = TrainParams.load(DEFAULT)
    with socket.socket() as busy:  # another run holds the configured port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        launch = msgspec.structs.replace(tp.launch, master_port=busy.getsockname()[1])
        port = int(launch_env(launch, 200704, base={"PATH": "/bin"})["MASTER_PORT"])
        assert port != launch.master_port and port > 0
    told = launch_env(tp.launch, 200704, base={"PATH": "/bin", "MASTER_PORT": "29999"})
    assert told["MASTER_PORT"] == "29999"
    paper = launch_env(TrainParams.load(PAPER).launch, 200704, base={"PATH": "/bin", "MASTER_ADDR": "10.0.0.1"})
    assert paper["MASTER_PORT"] == "29500"  # several nodes must agree on the configured port


def test_the_paper_profile_on_one_node_needs_no_master_address() -> None:
    """One 8-GPU machine (NNODES=1): the profile's empty master_addr becomes loopback, not ':PORT'."""
    env = launch_env(TrainParams.load(PAPER).launch, 200704, base={"PATH": "/bin", "NNODES": "1"})
    assert env["MASTER_ADDR"] == "127.0.0.1" and int(env["MASTER_PORT"]) > 0


def _paper_stage_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The paper profile with its starting weights and data present, and `swift` refusing to start."""
    import json
    import sys

    import msgspec

    import subprocess

    init = tmp_path / "data" / "Qwen2.5-VL-7B-Instruct"
    init.mkdir(parents=True)
    (init / "config.json").write_text("{}")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    tp = TrainParams.load(PAPER)
    tp = msgspec.structs.replace(tp, sft=msgspec.structs.replace(tp.sft, dataset=str(rows)),
                                 st_rl=msgspec.structs.replace(tp.st_rl, dataset=str(rows)))

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("training started although a GPU package is missing")

    monkeypatch.setattr(subprocess, "run", no_training)
    for module in ("flash_attn", "vllm"):  # absent, whatever this machine has installed
        monkeypatch.setitem(sys.modules, module, None)
    return tp, init


@pytest.mark.parametrize("stage", ["sft", "st_rl"])
def test_paper_profile_without_gpu_packages_stops_before_training(stage: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from gelab.errors import GelabError
    from gelab.train.training import run_stage

    tp, init = _paper_stage_inputs(tmp_path, monkeypatch)
    out = tmp_path / stage
    with pytest.raises(GelabError) as err:
        run_stage(tp, stage, str(init), out, tmp_path / "metrics")
    message = str(err.value)
    assert "launch.attn_impl is flash_attn but the flash-attn package is not installed" in message
    assert "make flash-attn" in message and "requirements-gpu-flash-attn.txt" in message
    if stage == "st_rl":  # rollouts through vLLM: the GPU lock
        assert "st_rl.use_vllm is true but the vllm package is not installed" in message
        assert "pip install -r requirements-gpu.lock" in message
    else:
        assert "vllm" not in message
    assert not out.exists()  # nothing written, nothing launched


def test_a_flash_attn_that_does_not_load_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed but built against another torch: the import fails with undefined symbols."""
    import sys

    from gelab.train.checks import check_gpu_packages
    from gelab.train.config import TrainError

    tp = TrainParams.load(PAPER)
    broken = tmp_path / "flash_attn"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('flash_attn_2_cuda.so: undefined symbol: _ZN3c10')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    with pytest.raises(TrainError, match=r"flash-attn package is installed but does not load .*undefined symbol"):
        check_gpu_packages(tp, "sft")


def test_default_profile_needs_no_gpu_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gelab.train.checks import check_gpu_packages

    for module in ("flash_attn", "vllm"):
        monkeypatch.setitem(sys.modules, module, None)
    tp = TrainParams.load(DEFAULT)
    for stage in STAGES:
        check_gpu_packages(tp, stage)  # sdpa, PyTorch rollouts: nothing to check


def test_rl_prompts_must_fit_an_image_and_the_answer(tmp_path: Path) -> None:
    """max_length is also the colocated vLLM's context: it must hold one image and the answer."""
    text = PAPER.read_text().replace("max_length: 4096                 # one turn", "max_length: 300 # one turn")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"p\.yaml: mt_rl\.max_length: 300 tokens cannot hold one image \(256 tokens"):
        TrainParams.load(tmp_path / "p.yaml")


def test_vllm_image_limit_is_the_most_images_a_prompt_of_the_data_has() -> None:
    from gelab.train.command import images_per_prompt, rl_command

    tp = TrainParams.load(PAPER)
    assert images_per_prompt([{"images": ["a.png"]}, {"images": []}]) == 1
    assert images_per_prompt([{"images": ["a.png", "b.png"]}]) == 2
    cmd = rl_command(tp, "st_rl", "init", "d.jsonl", "run", images=2)
    assert json.loads(cmd[cmd.index("--vllm_limit_mm_per_prompt") + 1]) == {"image": 2}


def test_the_mt_rl_curriculum_keeps_the_tasks_that_fit_the_turn_cap(tmp_path: Path) -> None:
    from gelab.errors import InputError
    from gelab.train.training import curriculum_rows

    rows = [{"id": f"t{n}", "path_length": n} for n in (1, 3, 2, 7, 1)]
    assert [r["id"] for r in curriculum_rows(rows, 2)] == ["t1", "t2", "t1"]  # file order kept
    assert curriculum_rows(rows, 0) == rows  # 0: every task (the paper profile)
    with pytest.raises(InputError, match=r"row 'x': no whole-number path_length"):
        curriculum_rows([{"id": "x"}], 2)
    default = TrainParams.load(DEFAULT)
    assert default.mt_rl.max_path_length == default.mt_rl.max_turns - 1  # L clicks + complete = L + 1 turns
    assert TrainParams.load(PAPER).mt_rl.max_path_length == 0
    text = DEFAULT.read_text().replace("  max_path_length: 2 ", "  max_path_length: 3 ")
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"mt_rl\.max_path_length: a task of 3 clicks needs 4 turns"):
        TrainParams.load(tmp_path / "p.yaml")
