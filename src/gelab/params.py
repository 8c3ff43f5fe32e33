"""Typed parameters: ``params.yaml`` sections loaded into dataclasses; unknown keys are errors.

Each section maps to one dataclass below. A missing key takes the default shown here; an unknown key
or a value of the wrong type raises :class:`ParamsError` naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gelab.errors import InputError

T = TypeVar("T")


class ParamsError(InputError):
    """A bad ``params.yaml``: the message names the file and the dotted key."""


@dataclass(frozen=True)
class EnvParams:
    """Env-Base generation (SPEC §1). Pixel values are canvas pixels."""

    seed: int = 0  # every random choice of the generator derives from this
    branching: list[int] = field(default_factory=lambda: [5, 3, 2, 2, 1, 1])  # children per page, by depth
    canvas: list[int] = field(default_factory=lambda: [1179, 2556])  # width, height (portrait phone)
    icon_size: int = 200  # content and system icons are icon_size × icon_size
    back_box: list[int] = field(default_factory=lambda: [60, 60, 260, 260])
    home_box: list[int] = field(default_factory=lambda: [919, 60, 1119, 260])
    title_box: list[int] = field(default_factory=lambda: [389, 60, 789, 260])  # page id drawn centred here
    grid_x: list[int] = field(default_factory=lambda: [244, 474, 704, 934])  # slot left edges
    grid_y: list[int] = field(default_factory=lambda: [568, 798, 1028, 1258, 1488, 1718, 1948, 2178])  # slot tops
    model_image_size: int = 448  # model input is model_image_size² (448² = max_pixels 200704)
    render_workers: int = 2  # processes that render pages (output does not depend on it)


@dataclass(frozen=True)
class VariantParams:
    """OOD variants built from the base environment (SPEC §1); each has its own seed."""

    kinds: list[str] = field(default_factory=lambda: ["image", "name", "position", "noise"])
    seed: int = 1
    noise_icons: int = 2  # distractor icons per page for Env-Noise (the paper's figure shows two)


@dataclass(frozen=True)
class DataParams:
    """Datasets (SPEC §4). Subtrees are named by their root page."""

    seed: int = 0  # click points and captioning points derive from this
    sft_subtrees: list[str] = field(default_factory=lambda: ["page_1", "page_2"])
    rl_subtrees: list[str] = field(default_factory=lambda: ["page_3", "page_4"])
    test_subtree: str = "page_5"  # held out: OOD static and interactive evaluation
    id_subtree: str = "page_1"  # in-distribution static evaluation (an SFT subtree)
    st_rl_subtree: str = "page_3"  # single-turn RL step samples
    mt_rl_subtree: str = "page_4"  # multi-turn RL tasks
    sft_path_copies: int = 1  # SFT path data per SFT subtree, each copy with fresh click points
    grounding_per_icon: int = 10  # samples per icon name (230 content + back + home = 232 names -> 2,320)
    captioning_per_icon: int = 10
    ood_variants: list[str] = field(default_factory=lambda: ["image", "name", "position", "noise"])


@dataclass(frozen=True)
class TinyModelParams:
    """The embedded default model (``gelab train tiny-model``): a random-init Qwen2.5-VL, no download."""

    seed: int = 0  # torch.manual_seed for the weights
    corpus: list[str] = field(default_factory=lambda: ["build/data/sft.jsonl"])  # BPE training texts
    vocab_learned: int = 1024  # BPE entries trained on the corpus (ids 0..vocab_learned-1)
    text_hidden: int = 64  # LM width
    text_intermediate: int = 128  # LM MLP width
    text_layers: int = 2
    text_heads: int = 4  # head_dim = text_hidden / text_heads
    text_kv_heads: int = 2
    vision_hidden: int = 32  # ViT width (patch 14, merge 2 as Qwen2.5-VL)
    vision_intermediate: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    max_pixels: int = 200704  # 448² -> 256 visual tokens
    init_std: float = 0.02  # std of the random init (transformers' initializer_range)


@dataclass(frozen=True)
class ModelParams:
    """Which base weights SFT starts from."""

    base: str = "build/models/tiny"  # folder with HF weights; the paper profile points at Qwen2.5-VL-7B-Instruct
    model_type: str = "qwen2_5_vl"  # ms-swift --model_type
    template: str = "qwen2_5_vl"  # ms-swift --template
    tiny: TinyModelParams = field(default_factory=TinyModelParams)


@dataclass(frozen=True)
class LaunchParams:
    """How ms-swift is launched; shared by the three training stages (SPEC §7).

    ``nnodes``/``node_rank``/``master_addr``/``master_port``/``nproc_per_node`` may be overridden by the
    environment variables of the same name in upper case (``NNODES`` ...), as torchrun does.
    """

    device: str = "cpu"  # "cpu" or "cuda"
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    nproc_per_node: int = 1  # processes per node (GPUs; 1 on CPU)
    deepspeed: str = "zero3"  # ms-swift --deepspeed preset (ZeRO-3 in both profiles)
    torch_dtype: str = "float32"  # bfloat16 on GPU (paper)
    attn_impl: str = "sdpa"  # flash_attn on GPU (paper)
    report_to: str = "none"  # "tensorboard" or "wandb" only when asked (key from WANDB_API_KEY)
    dataloader_num_workers: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. OMP_NUM_THREADS for the run


@dataclass(frozen=True)
class SftParams:
    """Supervised fine-tuning (SPEC §7, paper Table 7)."""

    dataset: str = "build/data/sft.jsonl"
    max_samples: int = 0  # rows taken (seeded shuffle); 0 = all
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    per_device_batch: int = 2
    grad_accum: int = 2
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int = -1  # -1: run the epochs
    max_length: int = 2048  # tokens per sample (packing length when packing)
    packing: bool = False  # release scripts: packing to 10,240 tokens (GPU only)
    freeze_vit: bool = True  # vision tower frozen (paper)
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 42
    extra_args: list[str] = field(default_factory=list)  # appended verbatim to the swift command


@dataclass(frozen=True)
class RlParams:
    """GRPO, single-turn (``st_rl``) or multi-turn (``mt_rl``) (SPEC §6–7, paper Tables 8–9)."""

    dataset: str = "build/data/st_rl.jsonl"
    max_samples: int = 0  # prompts taken (seeded shuffle); 0 = all
    rewards: list[str] = field(default_factory=lambda: ["gelab_type", "gelab_coord", "gelab_intent", "gelab_format"])
    learning_rate: float = 1e-6
    per_device_batch: int = 8
    grad_accum: int = 1
    epochs: float = 5.0
    max_steps: int = -1
    num_generations: int = 8
    temperature: float = 1.2
    top_p: float = 1.0
    top_k: int = 8
    beta: float = 0.04  # KL coefficient (framework default)
    max_completion_length: int = 128  # tokens per turn
    max_length: int = 4096  # prompt + completion tokens
    max_turns: int = 1  # > 1 enables the gelab multi-turn scheduler (paper MT-RL: 12)
    loss_scale: str = "default"  # multi-turn: "default" trains every assistant turn
    use_vllm: bool = False  # rollouts through vLLM (paper profile); PyTorch engine otherwise
    vllm_mode: str = "colocate"  # "colocate" or "server" (swift rollout)
    vllm_gpu_memory_utilization: float = 0.5
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 42
    extra_args: list[str] = field(default_factory=list)


MODEL_BACKENDS = ("hf", "vllm", "openai")  # model backends of evaluation (gelab.eval.backends)


@dataclass(frozen=True)
class EvalParams:
    """Static and interactive evaluation (SPEC §5). Limits are for the CPU profile; None = the full set."""

    seed: int = 0  # sampling seeds (per episode and step) and task subsets derive from this
    attempts: int = 5  # interactive attempts per task: Pass@1 = mean, Pass@k = any (k = attempts)
    max_steps: int = 12  # interactive step cap (paper: "e.g. 12")
    temperature: float = 1.0  # interactive sampling; > 0 so that attempts differ (the paper does not say)
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    static_temperature: float = 0.0  # static benchmark decodes greedily
    max_new_tokens: int = 64  # an answer line is about 40 Qwen tokens
    batch_size: int = 8  # requests per model call; 0 = all in one call (reference policies always take all)
    backend: str = "hf"  # model stages: hf | vllm | openai
    device: str = "auto"  # hf backend: auto | cpu | cuda
    max_pixels: int = 200704  # 448² -> 256 visual tokens (SPEC §1)
    static_limit_tasks: int = 0  # model stages: tasks per static file (all their steps), stratified; 0 = all
    interactive_limit_tasks: int = 0  # model stages: tasks of the interactive run, stratified; 0 = all 2,162
    reference_policies: list[str] = field(default_factory=lambda: ["oracle", "random", "home-then-complete"])
    checkpoints: dict[str, str] = field(default_factory=dict)  # model name -> HF folder (e.g. sft: build/checkpoints/sft/final)

    def __post_init__(self) -> None:
        limits = [("attempts", self.attempts >= 1, "at least 1"), ("max_steps", self.max_steps >= 1, "at least 1"),
                  ("batch_size", self.batch_size >= 0, "0 (all in one call) or more"),
                  ("max_new_tokens", self.max_new_tokens >= 1, "at least 1"),
                  ("temperature", self.temperature >= 0, "0 (greedy) or more"),
                  ("static_temperature", self.static_temperature >= 0, "0 (greedy) or more"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1]"), ("top_k", self.top_k >= 0, "0 (no cut) or more"),
                  ("max_pixels", self.max_pixels >= 28 * 28, "at least 784 (one 28x28 patch group)"),
                  ("static_limit_tasks", self.static_limit_tasks >= 0, "0 (all) or more"),
                  ("interactive_limit_tasks", self.interactive_limit_tasks >= 0, "0 (all) or more"),
                  ("backend", self.backend in MODEL_BACKENDS, f"one of {', '.join(MODEL_BACKENDS)}")]
        for name, ok, expected in limits:
            if not ok:
                raise InputError(f"{name}: must be {expected}, got {getattr(self, name)!r}")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return {_check_type(k, key_hint, f"{where} key"): _check_type(v, value_hint, f"{where}.{k}")
                for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _check_type(value, arg, where)
                except ParamsError:
                    continue
        raise ParamsError(f"{where}: {value!r} does not fit {hint}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any:
        return value
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ParamsError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    values = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    try:
        return cls(**values)
    except ValueError as exc:  # a section's own range checks start with the field's name
        raise ParamsError(f"{where}.{exc}") from None


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """The dataclass for one top-level section of a params file (missing section: defaults)."""
    from gelab.io import read_yaml

    path = Path(path)
    try:
        raw = read_yaml(path) or {}
    except ValueError as exc:
        raise ParamsError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return from_dict(cls, raw.get(section), f"{path}: {section}")
