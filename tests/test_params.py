"""Typed parameters: the repository's params.yaml loads; unknown keys and wrong types are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from gelab.params import (
    DataParams,
    EnvParams,
    EvalParams,
    LaunchParams,
    ModelParams,
    ParamsError,
    RlParams,
    SftParams,
    VariantParams,
    load_section,
    replace,
)


def test_repository_params_load_with_defaults_of_the_paper() -> None:
    env = load_section(REPO / "params.yaml", "env", EnvParams)
    assert env == EnvParams()
    assert load_section(REPO / "params.yaml", "data", DataParams).test_subtree == "page_5"
    assert load_section(REPO / "params.yaml", "variants", VariantParams).noise_icons == 2


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("env:\n  seed: 1\n  brnaching: [1]\n")
    with pytest.raises(ParamsError, match=r"params.yaml: env\.brnaching: unknown key"):
        load_section(p, "env", EnvParams)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("env:\n  branching: [5, three]\n")
    with pytest.raises(ParamsError, match=r"env\.branching\[1\]: expected int"):
        load_section(p, "env", EnvParams)


def _load(tmp_path: Path, text: str, section: str, cls):  # type: ignore[no-untyped-def]
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return load_section(p, section, cls)


@pytest.mark.parametrize("text,section,cls,message", [
    # a misspelt section never falls back to the defaults
    ("stf:\n  max_steps: 3\n", "sft", SftParams, r"params.yaml: sft: missing section \(write `sft: \{\}`"),
    ("sft:\n  learning_rate: -0.1\n", "sft", SftParams, r"sft\.learning_rate: must be > 0\.0, got -0\.1"),
    ("sft:\n  learning_rate: .nan\n", "sft", SftParams, r"sft\.learning_rate: must be a finite number, got nan"),
    ("eval:\n  temperature: .inf\n", "eval", EvalParams, r"eval\.temperature: must be a finite number, got inf"),
    ("sft:\n  seed: -1\n", "sft", SftParams, r"sft\.seed: must be >= 0, got -1"),  # NumPy refuses it mid-run
    ("model:\n  tiny: {seed: 4294967296}\n", "model", ModelParams, r"model\.tiny\.seed: must be <= 4294967295"),
    ("launch:\n  extra_env: {'A=B': x}\n", "launch", LaunchParams, r"launch\.extra_env: 'A=B' is not a usable"),
    ("sft:\n  per_device_batch: 0\n", "sft", SftParams, r"sft\.per_device_batch: must be >= 1, got 0"),
    ("sft:\n  save_steps: 0\n", "sft", SftParams, r"sft\.save_steps: must be >= 1, got 0"),
    ("sft:\n  max_steps: 0\n", "sft", SftParams, r"sft\.max_steps: must be -1 \(run the epochs\)"),
    ("sft:\n  warmup_ratio: 1.5\n", "sft", SftParams, r"sft\.warmup_ratio: must be <= 1\.0, got 1\.5"),
    ("launch:\n  nproc_per_node: 0\n", "launch", LaunchParams, r"launch\.nproc_per_node: must be >= 1, got 0"),
    ("launch:\n  nnodes: 2\n  master_addr: 127.0.0.1\n", "launch", LaunchParams, r"launch\.master_addr: 127\.0\.0\.1"),
    ("launch:\n  nnodes: 2\n  node_rank: 2\n  master_addr: 10.0.0.1\n", "launch", LaunchParams,
     r"launch\.node_rank: must be below nnodes"),
    ("launch:\n  extra_env: {OMP_NUM_THREADS: 2}\n", "launch", LaunchParams,
     r"launch\.extra_env\.OMP_NUM_THREADS: expected str, got 2"),
    ("env:\n  branching: [0]\n", "env", EnvParams, r"env\.branching: the root needs at least one child"),
    ("env:\n  branching: [5, 40]\n", "env", EnvParams, r"env\.branching: each entry must be 0\.\.32"),
    ("env:\n  model_image_size: 450\n", "env", EnvParams, r"env\.model_image_size: must be a multiple of 28"),
    ("env:\n  back_box: [60, 60, 2000, 260]\n", "env", EnvParams, r"env\.back_box: must be \[x1, y1, x2, y2\]"),
    # layouts that would give an invalid environment are refused here, naming the parameter
    ("env:\n  back_box: [60, 60, 300, 600]\n", "env", EnvParams, r"env\.back_box: .* overlaps the grid slot at"),
    ("env:\n  title_box: [200, 60, 400, 260]\n", "env", EnvParams, r"env\.back_box: .* overlaps title_box"),
    ("env:\n  grid_x: [244, 444]\n", "env", EnvParams, r"env\.grid_x: slots of 200 px overlap"),
    ("env:\n  icon_size: 300\n", "env", EnvParams, r"env\.grid_x: slots of 300 px"),
    ("env:\n  canvas: [100000, 2556]\n", "env", EnvParams, r"env\.canvas\[0\]: must be <= 10000"),
    ("env:\n  model_image_size: 4480\n", "env", EnvParams, r"env\.model_image_size: must be <= 3584"),
    ("env:\n  render_workers: 100000\n", "env", EnvParams, r"env\.render_workers: must be <= 256"),
    ("variants:\n  seed: -3\n", "variants", VariantParams, r"variants\.seed: must be >= 0"),
    ("st_rl:\n  per_device_batch: 6\n  num_generations: 4\n", "st_rl", RlParams,
     r"st_rl\.per_device_batch: per_device_batch × grad_accum \(6 × 1\) must be a multiple of num_generations"),
    ("st_rl:\n  num_generations: 1\n", "st_rl", RlParams, r"st_rl\.num_generations: must be >= 2, got 1"),
    ("st_rl:\n  top_p: 0\n", "st_rl", RlParams, r"st_rl\.top_p: must be > 0\.0, got 0"),
    ("data:\n  test_subtree: page_1\n", "data", DataParams, r"data\.test_subtree: page_1 is also a training subtree"),
    ("data:\n  ood_variants: [image, blur]\n", "data", DataParams, r"data\.ood_variants: 'blur' is not one of"),
    ("data:\n  test_subtree: five\n", "data", DataParams, r"data\.test_subtree: must be matching"),
    ("model:\n  tiny: {text_hidden: 30, text_heads: 4}\n", "model", ModelParams,
     r"model\.tiny\.text_heads: text_hidden \(30\) must split"),
    ("model:\n  tiny: {vocab_size: 3}\n", "model", ModelParams, r"model\.tiny\.vocab_size: unknown key"),
    ("eval:\n  batch_size: -1\n", "eval", EvalParams, r"eval\.batch_size: must be >= 0, got -1"),
    ("eval:\n  connect_timeout_s: 0\n", "eval", EvalParams, r"eval\.connect_timeout_s: must be > 0\.0"),
    ("eval:\n  retries: 100\n", "eval", EvalParams, r"eval\.retries: must be <= 20"),
    ("eval:\n  retry_backoff_s: -1\n", "eval", EvalParams, r"eval\.retry_backoff_s: must be >= 0"),
    ("eval:\n  read_timeout_s: 60\n  request_deadline_s: 30\n", "eval", EvalParams,
     r"eval\.request_deadline_s: 30\.0 is shorter than"),
    ("eval:\n  checkpoints: {../up: build/x}\n", "eval", EvalParams, r"eval\.checkpoints: '\.\./up' is not a model"),
    ("eval:\n  checkpoints: {oracle: build/x}\n", "eval", EvalParams, r"eval\.checkpoints: 'oracle' is not a model"),
    ("eval:\n  reference_policies: [oracle, oracle]\n", "eval", EvalParams, r"eval\.reference_policies: distinct"),
    ("env:\n  seed: 1\n  seed: 2\n", "env", EnvParams, r"params.yaml: not valid YAML \(.*duplicate key 'seed'"),
    ("- a list\n", "env", EnvParams, r"params.yaml: expected a mapping of sections"),
])
def test_bad_params_are_refused_naming_file_and_key(tmp_path: Path, text: str, section: str, cls, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        _load(tmp_path, text, section, cls)


def test_an_empty_section_takes_every_default(tmp_path: Path) -> None:
    assert _load(tmp_path, "sft: {}\n", "sft", SftParams) == SftParams()
    assert _load(tmp_path, "sft:\n", "sft", SftParams) == SftParams()


def test_overrides_are_checked_like_the_file() -> None:
    assert replace(EvalParams(), "command line: eval", batch_size=3).batch_size == 3
    with pytest.raises(ParamsError, match=r"^command line: eval\.top_p: must be <= 1\.0, got 2\.0$"):
        replace(EvalParams(), "command line: eval", top_p=2.0)


def test_both_profiles_pass_every_check() -> None:
    from gelab.train.config import TrainParams

    for path in (REPO / "params.yaml", REPO / "profiles" / "paper.yaml"):
        TrainParams.load(path)
        for section, cls in (("env", EnvParams), ("variants", VariantParams), ("data", DataParams),
                             ("eval", EvalParams)):
            load_section(path, section, cls)


def test_several_nodes_need_node_0s_address() -> None:
    from gelab.train.config import TrainError
    from gelab.train.launch import launch_env

    launch = LaunchParams(nnodes=2, master_addr="")
    with pytest.raises(TrainError, match="set MASTER_ADDR"):
        launch_env(launch, 200704, base={"PATH": "/bin"})
    assert launch_env(launch, 200704, base={"MASTER_ADDR": "10.0.0.1"})["MASTER_ADDR"] == "10.0.0.1"
