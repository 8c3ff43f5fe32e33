"""Typed parameters: ``params.yaml`` sections loaded into ``msgspec`` structs with constraints.

Each top-level section maps to one struct below. Every section must be present in the file (write
``sft: {}`` to take every default of a section); inside a section a missing key takes the default
shown here. An unknown key, a duplicate key, a value of the wrong type, a number out of its range
(NaN included) or a broken cross-field rule raises :class:`ParamsError` naming the file and the
dotted key, before anything runs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from gelab.errors import InputError, quote, validation_message

T = TypeVar("T")

# --- vocabularies: each fact once ----------------------------------------------------------------

VARIANT_KINDS = ("image", "name", "position", "noise")  # the OOD environments of paper Table 3
MODEL_BACKENDS = ("hf", "vllm", "openai")  # model backends of evaluation (gelab.eval.backends)
REFERENCE_POLICIES = ("oracle", "random", "home-then-complete")  # scripted policies (gelab.eval.policies)
PATCH_GROUP = 28  # Qwen2.5-VL: 14-pixel patches merged 2 × 2 — image sides are multiples of 28
MAX_CANVAS = 10_000  # pixels per side (gelab.env.structure has the same bound for environment files)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # eval.checkpoints keys: folder names under build/eval
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # launch.extra_env keys

# --- constrained numbers ---------------------------------------------------------------------------

NonNeg = Annotated[int, msgspec.Meta(ge=0)]
Pos = Annotated[int, msgspec.Meta(ge=1)]
PosFloat = Annotated[float, msgspec.Meta(gt=0)]  # NaN fails every bound; infinity: see _non_finite
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Seed = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]  # NumPy's and torch's seed range
Side = Annotated[int, msgspec.Meta(ge=1, le=MAX_CANVAS)]  # an image side, pixels
Workers = Annotated[int, msgspec.Meta(ge=1, le=256)]  # processes
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
OpenUnit = Annotated[float, msgspec.Meta(gt=0, le=1)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Steps = Annotated[int, msgspec.Meta(ge=-1)]  # -1: run the epochs
PageId = Annotated[str, msgspec.Meta(pattern=r"^page_\d+$")]
MaxPixels = Annotated[int, msgspec.Meta(ge=PATCH_GROUP * PATCH_GROUP)]  # an image budget (pixels)


def visual_tokens(max_pixels: int) -> int:
    """Qwen2.5-VL tokens of one image of at most ``max_pixels`` pixels (one per 28 × 28 block): 200704 -> 256."""
    return max_pixels // (PATCH_GROUP * PATCH_GROUP)


def image_size(max_pixels: int) -> dict[str, int]:
    """The image processor's ``size`` for an image budget (transformers' current spelling of
    min_pixels/max_pixels): at most ``max_pixels``, at least 56² (the tiny model and both backends)."""
    return {"shortest_edge": min(56 * 56, max_pixels), "longest_edge": max_pixels}


class ParamsError(InputError):
    """A bad ``params.yaml``: the message names the file and the dotted key."""


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A params section; :meth:`check` holds its cross-field rules (message: ``key: what is wrong``)."""

    def check(self) -> None:
        """Raise ``ValueError("dotted.key: ...")`` when fields disagree with each other."""


def _box(name: str, box: list[int], canvas: list[int]) -> None:
    if len(box) != 4 or not (0 <= box[0] < box[2] <= canvas[0] and 0 <= box[1] < box[3] <= canvas[1]):
        raise ValueError(f"{name}: must be [x1, y1, x2, y2] with x1 < x2, y1 < y2 inside the canvas {canvas}, "
                         f"got {quote(box)}")


class EnvParams(Section, frozen=True):
    """Env-Base generation (SPEC §1). Pixel values are canvas pixels."""

    seed: Seed = 0  # every random choice of the generator derives from this
    branching: list[NonNeg] = msgspec.field(default_factory=lambda: [5, 3, 2, 2, 1, 1])  # children per page, by depth
    canvas: list[Side] = msgspec.field(default_factory=lambda: [1179, 2556])  # width, height (portrait phone)
    icon_size: Side = 200  # content and system icons are icon_size × icon_size
    back_box: list[int] = msgspec.field(default_factory=lambda: [60, 60, 260, 260])
    home_box: list[int] = msgspec.field(default_factory=lambda: [919, 60, 1119, 260])
    title_box: list[int] = msgspec.field(default_factory=lambda: [389, 60, 789, 260])  # page id drawn centred here
    grid_x: list[NonNeg] = msgspec.field(default_factory=lambda: [244, 474, 704, 934])  # slot left edges
    grid_y: list[NonNeg] = msgspec.field(default_factory=lambda: [568, 798, 1028, 1258, 1488, 1718, 1948, 2178])  # tops
    model_image_size: Annotated[int, msgspec.Meta(ge=PATCH_GROUP, le=3584)] = 448  # model input is
    # model_image_size² (448² = max_pixels 200704; 3584² is Qwen2.5-VL's largest image budget)
    render_workers: Workers = 2  # processes that render pages (output does not depend on it)

    def check(self) -> None:
        if len(self.canvas) != 2:
            raise ValueError(f"canvas: must be [width, height], got {quote(self.canvas)}")
        for name in ("back_box", "home_box", "title_box"):
            _box(name, getattr(self, name), self.canvas)
        if any(x + self.icon_size > self.canvas[0] for x in self.grid_x) or \
                any(y + self.icon_size > self.canvas[1] for y in self.grid_y):
            raise ValueError(f"grid_x: slots of {self.icon_size} px must fit inside the canvas {self.canvas}")
        for name in ("grid_x", "grid_y"):  # hit tests are inclusive: slots whose edges touch overlap
            edges = sorted(getattr(self, name))
            if any(b - a <= self.icon_size for a, b in zip(edges, edges[1:])):
                raise ValueError(f"{name}: slots of {self.icon_size} px overlap "
                                 f"(edges {quote(getattr(self, name))} must be more than icon_size apart)")
        slots = [(x, y, x + self.icon_size, y + self.icon_size) for y in self.grid_y for x in self.grid_x]
        boxes = [("back_box", self.back_box), ("home_box", self.home_box), ("title_box", self.title_box)]
        for i, (name, a) in enumerate(boxes):
            others = [*boxes[i + 1:], *((f"the grid slot at ({b[0]}, {b[1]})", b) for b in slots)]
            for other, b in others:
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    raise ValueError(f"{name}: {a} overlaps {other} {list(b)} (edges count as inside)")
        if not self.branching or max(self.branching) > len(slots):
            raise ValueError(f"branching: each entry must be 0..{len(slots)} (the grid slots), "
                             f"got {quote(self.branching)}")
        if self.branching[0] < 1:
            raise ValueError(f"branching: the root needs at least one child, got {quote(self.branching)}")
        if self.model_image_size % PATCH_GROUP:
            raise ValueError(f"model_image_size: must be a multiple of {PATCH_GROUP} (the model's patch grid), "
                             f"got {self.model_image_size}")


class VariantParams(Section, frozen=True):
    """OOD variants built from the base environment (SPEC §1); each has its own seed."""

    kinds: list[str] = msgspec.field(default_factory=lambda: list(VARIANT_KINDS))
    seed: Seed = 1
    noise_icons: NonNeg = 2  # distractor icons per page for Env-Noise (the paper's figure shows two)

    def check(self) -> None:
        bad = [k for k in self.kinds if k not in VARIANT_KINDS]
        if bad or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds: distinct names from {', '.join(VARIANT_KINDS)}, got {quote(self.kinds)}")


class DataParams(Section, frozen=True):
    """Datasets (SPEC §4). Subtrees are named by their root page."""

    seed: Seed = 0  # click points and captioning points derive from this
    sft_subtrees: list[PageId] = msgspec.field(default_factory=lambda: ["page_1", "page_2"])
    rl_subtrees: list[PageId] = msgspec.field(default_factory=lambda: ["page_3", "page_4"])
    test_subtree: PageId = "page_5"  # held out: OOD static and interactive evaluation
    id_subtree: PageId = "page_1"  # in-distribution static evaluation (an SFT subtree)
    st_rl_subtree: PageId = "page_3"  # single-turn RL step samples
    mt_rl_subtree: PageId = "page_4"  # multi-turn RL tasks
    sft_path_copies: Pos = 1  # SFT path data per SFT subtree, each copy with fresh click points
    grounding_per_icon: NonNeg = 10  # samples per icon name (230 content + back + home = 232 names -> 2,320)
    captioning_per_icon: NonNeg = 10
    ood_variants: list[str] = msgspec.field(default_factory=lambda: list(VARIANT_KINDS))

    def check(self) -> None:
        if self.test_subtree in (*self.sft_subtrees, *self.rl_subtrees):
            raise ValueError(f"test_subtree: {self.test_subtree} is also a training subtree")
        if self.id_subtree not in self.sft_subtrees:
            raise ValueError(f"id_subtree: {self.id_subtree} must be one of sft_subtrees {self.sft_subtrees}")
        for name in ("st_rl_subtree", "mt_rl_subtree"):
            if getattr(self, name) not in self.rl_subtrees:
                raise ValueError(f"{name}: {getattr(self, name)} must be one of rl_subtrees {self.rl_subtrees}")
        bad = [k for k in self.ood_variants if k not in VARIANT_KINDS]
        if bad:
            raise ValueError(f"ood_variants: {quote(bad[0])} is not one of {', '.join(VARIANT_KINDS)}")


class TinyModelParams(Section, frozen=True):
    """The embedded default model (``gelab train model``): a random-init Qwen2.5-VL, no download."""

    seed: Seed = 0  # torch.manual_seed for the weights
    corpus: list[str] = msgspec.field(default_factory=lambda: ["build/data/sft.jsonl"])  # BPE training texts
    vocab_learned: Pos = 1024  # BPE entries trained on the corpus (ids 0..vocab_learned-1)
    text_hidden: Pos = 64  # LM width
    text_intermediate: Pos = 128  # LM MLP width
    text_layers: Pos = 2
    text_heads: Pos = 4  # head_dim = text_hidden / text_heads
    text_kv_heads: Pos = 2
    vision_hidden: Pos = 32  # ViT width (patch 14, merge 2 as Qwen2.5-VL)
    vision_intermediate: Pos = 64
    vision_depth: Pos = 2
    vision_heads: Pos = 2
    init_std: PosFloat = 0.02  # std of the random init (transformers' initializer_range)

    def check(self) -> None:
        if self.text_hidden % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError(f"text_heads: text_hidden ({self.text_hidden}) must split into text_heads "
                             f"({self.text_heads}), and those into text_kv_heads ({self.text_kv_heads})")
        if self.vision_hidden % self.vision_heads:
            raise ValueError(f"vision_heads: vision_hidden ({self.vision_hidden}) must split into "
                             f"vision_heads ({self.vision_heads})")


class ModelParams(Section, frozen=True):
    """Which base weights SFT starts from."""

    base: str = "build/models/tiny"  # folder with HF weights; the paper profile points at Qwen2.5-VL-7B-Instruct
    model_type: str = "qwen2_5_vl"  # ms-swift --model_type
    template: str = "gelab_qwen2_5_vl"  # ms-swift --template (the tiny model's; the paper profile: qwen2_5_vl)
    # The image budget of the profile, one setting for training (MAX_PIXELS), the tiny model's processor
    # and evaluation: 448² = 200704 pixels -> 256 visual tokens (SPEC §1).
    max_pixels: MaxPixels = 200704
    tiny: TinyModelParams = msgspec.field(default_factory=TinyModelParams)


LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|::1)$")


class LaunchParams(Section, frozen=True):
    """How ms-swift is launched; shared by the three training stages (SPEC §7).

    ``nnodes``/``node_rank``/``master_addr``/``master_port``/``nproc_per_node`` may be overridden by the
    environment variables of the same name in upper case (``NNODES`` ...), as torchrun does.
    """

    device: str = "cpu"  # "cpu" or "cuda"
    nnodes: Pos = 1
    node_rank: NonNeg = 0
    master_addr: str = "127.0.0.1"  # "": taken from MASTER_ADDR (required when nnodes > 1)
    master_port: Port = 29500
    nproc_per_node: Pos = 1  # processes per node (GPUs; 1 on CPU)
    deepspeed: str = "zero3"  # ms-swift --deepspeed preset (ZeRO-3 in both profiles)
    torch_dtype: str = "float32"  # bfloat16 on GPU (paper)
    attn_impl: str = "sdpa"  # flash_attn on GPU (paper)
    report_to: str = "none"  # "tensorboard" or "wandb" only when asked (key from WANDB_API_KEY)
    dataloader_num_workers: NonNeg = 0
    dataset_num_proc: Pos = 1  # ms-swift --dataset_num_proc: processes that tokenise the data before training
    extra_env: dict[str, str] = msgspec.field(default_factory=dict)  # e.g. OMP_NUM_THREADS for the run

    def check(self) -> None:
        choices = {"device": ("cpu", "cuda"), "torch_dtype": ("float32", "bfloat16", "float16"),
                   "attn_impl": ("sdpa", "eager", "flash_attn")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: must be one of {', '.join(allowed)}, got {quote(getattr(self, name))}")
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank: must be below nnodes ({self.nnodes}), got {self.node_rank}")
        bad = next((k for k, v in self.extra_env.items() if not ENV_NAME.fullmatch(k) or "\0" in v), None)
        if bad is not None:
            raise ValueError(f"extra_env: {quote(bad)} is not a usable environment variable (name: letters, digits, _)")
        if self.nnodes > 1 and LOOPBACK.match(self.master_addr):
            raise ValueError(f"master_addr: {self.master_addr} is this machine only; with nnodes {self.nnodes} "
                             "write node 0's address, or \"\" and set MASTER_ADDR on every node")


class TrainStage(Section, frozen=True):
    """What SFT and RL share."""

    dataset: str = ""
    max_samples: NonNeg = 0  # rows taken (seeded shuffle); 0 = all
    learning_rate: PosFloat = 1e-5
    per_device_batch: Pos = 2
    grad_accum: Pos = 1
    epochs: PosFloat = 1.0
    max_steps: Steps = -1  # -1: run the epochs
    max_length: Pos = 2048  # tokens per sample
    save_steps: Pos = 500
    save_total_limit: Pos = 2
    logging_steps: Pos = 5
    seed: Seed = 42
    extra_args: list[str] = msgspec.field(default_factory=list)  # appended verbatim to the swift command

    def check(self) -> None:
        if self.max_steps == 0:
            raise ValueError("max_steps: must be -1 (run the epochs) or at least 1, got 0")


class SftParams(TrainStage, frozen=True):
    """Supervised fine-tuning (SPEC §7, paper Table 7)."""

    dataset: str = "build/data/sft.jsonl"
    lr_scheduler_type: str = "cosine"
    grad_accum: Pos = 2
    warmup_ratio: Fraction = 0.05
    packing: bool = False  # release scripts: packing to 10,240 tokens (GPU only)
    freeze_vit: bool = True  # vision tower frozen (paper)


class RlParams(TrainStage, frozen=True):
    """GRPO, single-turn (``st_rl``) or multi-turn (``mt_rl``) (SPEC §6–7, paper Tables 8–9)."""

    dataset: str = "build/data/st_rl.jsonl"
    rewards: list[str] = msgspec.field(default_factory=lambda: ["gelab_type", "gelab_coord", "gelab_intent",
                                                                "gelab_format"])
    learning_rate: PosFloat = 1e-6
    per_device_batch: Pos = 8
    epochs: PosFloat = 5.0
    num_generations: Annotated[int, msgspec.Meta(ge=2)] = 8  # GRPO compares completions within a group
    temperature: PosFloat = 1.2
    top_p: OpenUnit = 1.0
    top_k: NonNeg = 8
    beta: NonNegFloat = 0.04  # KL coefficient (framework default)
    max_completion_length: Pos = 128  # tokens per turn
    max_length: Pos = 4096  # prompt + completion tokens
    max_turns: Pos = 1  # > 1 enables the gelab multi-turn scheduler (paper MT-RL: 12)
    max_path_length: NonNeg = 0  # curriculum: only rows whose task's shortest path has at most this many clicks; 0 = all
    loss_scale: str = "default"
    use_vllm: bool = False  # rollouts through vLLM (paper profile); PyTorch engine otherwise
    vllm_mode: str = "colocate"  # "colocate" or "server" (swift rollout)
    vllm_gpu_memory_utilization: OpenUnit = 0.5
    lr_scheduler_type: str = "constant"  # paper profile: cosine (release scripts, SPEC §7)
    warmup_ratio: Fraction = 0.0  # paper profile: 0.05 (release scripts, SPEC §7)
    logging_steps: Pos = 1

    def check(self) -> None:
        super().check()
        if (self.per_device_batch * self.grad_accum) % self.num_generations:
            raise ValueError(f"per_device_batch: per_device_batch × grad_accum ({self.per_device_batch} × "
                             f"{self.grad_accum}) must be a multiple of num_generations ({self.num_generations})")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode: must be colocate or server, got {quote(self.vllm_mode)}")
        if not self.rewards:
            raise ValueError("rewards: at least one reward function")
        if self.warmup_ratio >= 1:
            raise ValueError(f"warmup_ratio: must be below 1, got {self.warmup_ratio}")
        if self.max_turns > 1 and self.max_path_length >= self.max_turns:
            raise ValueError(f"max_path_length: a task of {self.max_path_length} clicks needs {self.max_path_length + 1} "
                             f"turns (its clicks and complete), more than max_turns ({self.max_turns}); write at most "
                             f"{self.max_turns - 1}, or 0 for every task")


class EvalParams(Section, frozen=True):
    """Static and interactive evaluation (SPEC §5). Limits are for the CPU profile; 0 = the full set."""

    seed: Seed = 0  # sampling seeds (per episode and step) and task subsets derive from this
    attempts: Pos = 5  # interactive attempts per task: Pass@1 = mean, Pass@k = any (k = attempts)
    max_steps: Pos = 12  # interactive step cap (paper: "e.g. 12")
    temperature: NonNegFloat = 1.0  # interactive sampling; > 0 so that attempts differ (the paper does not say)
    top_p: OpenUnit = 1.0
    top_k: NonNeg = 0  # 0: no top-k cut
    repetition_penalty: PosFloat = 1.0  # 1: none; both backends get it explicitly (a checkpoint's own is ignored)
    static_temperature: NonNegFloat = 0.0  # static benchmark decodes greedily
    max_new_tokens: Pos = 64  # an answer line is about 40 Qwen tokens
    batch_size: NonNeg = 8  # requests per model call; 0 = all in one call (reference policies always take all)
    backend: str = "hf"  # model stages: hf | vllm | openai
    device: str = "auto"  # hf backend: auto | cpu | cuda
    static_limit_tasks: NonNeg = 0  # model stages: tasks per static file (all their steps), stratified; 0 = all
    interactive_limit_tasks: NonNeg = 0  # model stages: tasks of the interactive run, stratified; 0 = all 2,162
    reference_policies: list[str] = msgspec.field(default_factory=lambda: ["oracle", "random", "home-then-complete"])
    checkpoints: dict[str, str] = msgspec.field(default_factory=dict)  # model name -> HF folder
    # openai backend (an HTTP endpoint): time limits and retries of one request
    connect_timeout_s: PosFloat = 10.0  # to open the connection
    read_timeout_s: PosFloat = 300.0  # without a byte from the server (a long generation queue included)
    request_deadline_s: PosFloat = 900.0  # one request in all, retries and waits included
    retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 4  # after the first try, on retryable errors only
    retry_backoff_s: NonNegFloat = 1.0  # wait before the first retry; doubles each time (at most 60 s)

    def check(self) -> None:
        if self.backend not in MODEL_BACKENDS:
            raise ValueError(f"backend: must be one of {', '.join(MODEL_BACKENDS)}, got {quote(self.backend)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: must be auto, cpu or cuda, got {quote(self.device)}")
        unknown = [p for p in self.reference_policies if p not in REFERENCE_POLICIES]
        if unknown or len(set(self.reference_policies)) != len(self.reference_policies):
            raise ValueError(f"reference_policies: distinct names from {', '.join(REFERENCE_POLICIES)}, "
                             f"got {self.reference_policies}")
        for name in self.checkpoints:
            if not MODEL_NAME.fullmatch(name) or name in REFERENCE_POLICIES:
                raise ValueError(f"checkpoints: {quote(name)} is not a model name (a folder name under build/eval: "
                                 f"letters, digits, '_', '-', '.'; not a reference policy's)")
        if self.request_deadline_s < max(self.connect_timeout_s, self.read_timeout_s):
            raise ValueError(f"request_deadline_s: {self.request_deadline_s} is shorter than connect_timeout_s "
                             f"({self.connect_timeout_s}) or read_timeout_s ({self.read_timeout_s})")


class LearningSftParams(Section, frozen=True):
    """SFT learning check: memorise a fixed set of rows from the random-init model."""

    rows: Pos = 64  # navigation (edge) rows of the check's tasks, then grounding rows of their icons
    max_steps: Pos = 100  # optimizer steps (max_steps x per_device_batch rows seen)
    learning_rate: PosFloat = 3e-3
    per_device_batch: Pos = 8
    threshold: Annotated[float, msgspec.Meta(ge=0, le=100)] = 95.0  # pass: static step accuracy (%) on the rows >= this


class LearningRlParams(Section, frozen=True):
    """An RL learning check (GRPO from the check's SFT checkpoint)."""

    max_steps: Pos = 10
    learning_rate: PosFloat = 1e-4
    num_generations: Annotated[int, msgspec.Meta(ge=2)] = 4
    temperature: PosFloat = 1.2
    max_turns: Pos = 1  # MT-RL: turns per episode (a task of L clicks needs L + 1)
    threshold: float = 0.0  # pass: after - before >= this (ST-RL: mean total reward; MT-RL: strict success, points)


class LearningParams(Section, frozen=True):
    """Learning checks (``gelab check learning``): each stage moves its own objective on a small fixed problem.

    The problem lives in one RL subtree: ``tasks`` tasks of one and two clicks (their one-click edges
    are in the SFT data of every subtree). SFT memorises ``sft.rows`` rows of those edges and sees the
    two-click tasks' second steps ambiguously (one right click, ``decoys`` wrong ones); ST-RL is
    trained on those second-step prompts; MT-RL on the tasks, with the environment in the loop. Everything else (ms-swift, ZeRO-3, the plugin, the model) comes from the profile's own
    ``model``, ``launch``, ``sft``, ``st_rl`` and ``mt_rl`` sections.
    """

    subtree: PageId = "page_4"  # an RL subtree (not the test subtree)
    seed: int = 0  # which tasks are drawn
    tasks: Pos = 8  # two-click tasks of the MT-RL check (plus one_click_tasks of their edges)
    one_click_tasks: NonNeg = 4  # one-click tasks (edges of the above) in the MT-RL check
    decoys: NonNeg = 2  # SFT rows of each RL task's second step clicking a wrong icon, beside one right row (0: none shown)
    max_pixels: Annotated[int, msgspec.Meta(ge=PATCH_GROUP * PATCH_GROUP)] = 50176  # 224² -> 64 visual tokens
    sft: LearningSftParams = msgspec.field(default_factory=LearningSftParams)
    st_rl: LearningRlParams = msgspec.field(default_factory=lambda: LearningRlParams(threshold=0.5))
    mt_rl: LearningRlParams = msgspec.field(default_factory=lambda: LearningRlParams(max_turns=3, threshold=20.0))

    def check(self) -> None:
        if self.st_rl.max_turns != 1:
            raise ValueError(f"st_rl.max_turns: ST-RL is single-turn (1), got {self.st_rl.max_turns}")
        if self.mt_rl.max_turns < 3:
            raise ValueError(f"mt_rl.max_turns: two-click tasks need 3 turns (two clicks and complete), "
                             f"got {self.mt_rl.max_turns}")


# --- loading --------------------------------------------------------------------------------------

def _checked(section: Section, where: str) -> None:
    """Run the cross-field rules of a section and of every section nested in it."""
    try:
        section.check()
    except ValueError as exc:
        raise ParamsError(f"{where}.{exc}") from None
    for name in section.__struct_fields__:
        value = getattr(section, name)
        if isinstance(value, Section):
            _checked(value, f"{where}.{name}")


def _non_finite(raw: Any, key: str = "") -> tuple[str, float] | None:
    """The first infinite or NaN number in a raw section (YAML writes them ``.inf``, ``.nan``)."""
    if isinstance(raw, float) and not math.isfinite(raw):
        return key, raw
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{key}[{k}]" if isinstance(k, int) else f"{key}.{k}")
        if found is not None:
            return found
    return None


def from_dict(cls: type[T], raw: Any, where: str) -> T:
    """Build struct ``cls`` from a mapping (``None``: every default); errors name ``where`` and the key."""
    bad = _non_finite(raw)
    if bad is not None:
        raise ParamsError(f"{where}{bad[0]}: must be a finite number, got {bad[1]}")
    try:
        value = msgspec.convert({} if raw is None else raw, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise ParamsError(validation_message(exc, raw, cls, where)) from None
    _checked(value, where)  # type: ignore[arg-type]
    return value


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """The struct for one top-level section of a params file; the section must be there."""
    from gelab.io import read_yaml

    path = Path(path)
    raw = read_yaml(path, error=ParamsError)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    if section not in raw:
        raise ParamsError(f"{path}: {section}: missing section (write `{section}: {{}}` to take its defaults)")
    return from_dict(cls, raw[section], f"{path}: {section}")


def as_dict(params: Section) -> dict[str, Any]:
    """Plain data of a params struct (for run records such as ``params.json`` and ``manifest.json``)."""
    return msgspec.to_builtins(params)


def replace(params: T, where: str, **changes: Any) -> T:
    """A copy of ``params`` with ``changes`` (e.g. command-line overrides), checked like a loaded section.

    ``where`` names the origin in errors, e.g. ``"command line: eval"``.
    """
    return from_dict(type(params), {**msgspec.to_builtins(params), **changes}, where)
