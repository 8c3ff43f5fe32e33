"""Every string the model reads or writes, every parser and every coordinate conversion.

This module is the single source of truth for the text interface of gelab (SPEC §3). The
environment, the datasets, the rewards, the training plugins and both evaluations call it; nothing
else in the project formats or parses model text.

Conventions
-----------
- Model coordinates are integers in 0..1000 relative to the full canvas ("normalized"):
  ``x_norm = round(x_px * 1000 / width)``, ``y_norm = round(y_px * 1000 / height)``. ``round`` is
  Python's built-in (half to even), applied once; boxes are converted corner by corner.
- Hit tests are inclusive on all four edges: ``x1 <= x <= x2 and y1 <= y <= y2``.
- Icon names are ``<Category>_<N>`` and never contain whitespace.
- Parsing never raises: any text becomes a :class:`Click`, a :class:`Complete` or an
  :class:`Invalid` carrying the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

NORM_MAX = 1000  # model coordinates are integers in 0..NORM_MAX

Box = tuple[int, int, int, int]  # [x1, y1, x2, y2], inclusive

IMAGE_PLACEHOLDER = "<image>"  # ms-swift's image tag; removed for vLLM/HF prompts
BOX_START = "<|box_start|>"
BOX_END = "<|box_end|>"

SYSTEM_PROMPT = (
    "You are a GUI agent on a phone. You see the current page, the instruction and your earlier clicks. "
    "Reply with one line. To click: Explain:click NAME icon on PAGE.\tAction: "
    "click(start_box='<|box_start|>(x,y)<|box_end|>') where NAME is the exact icon name, PAGE the current "
    "page and x,y integers in 0..1000 of the screen. On the target page: Explain: this is target "
    "page.\tAction: complete"
)

# --- coordinates ------------------------------------------------------------------------------


def to_norm_x(x_px: float, width: int) -> int:
    """Pixel x on a canvas of ``width`` pixels -> normalized 0..1000."""
    return round(x_px * NORM_MAX / width)


def to_norm_y(y_px: float, height: int) -> int:
    """Pixel y on a canvas of ``height`` pixels -> normalized 0..1000."""
    return round(y_px * NORM_MAX / height)


def to_norm_box(box_px: Sequence[float], canvas: tuple[int, int]) -> Box:
    """Pixel box [x1, y1, x2, y2] -> normalized box (``bbox_norm``)."""
    x1, y1, x2, y2 = box_px
    w, h = canvas
    return (to_norm_x(x1, w), to_norm_y(y1, h), to_norm_x(x2, w), to_norm_y(y2, h))


def to_pixel_point(x_norm: float, y_norm: float, canvas: tuple[int, int]) -> tuple[int, int]:
    """Normalized point -> pixel point (for drawing only; hit tests stay in normalized space)."""
    return round(x_norm * canvas[0] / NORM_MAX), round(y_norm * canvas[1] / NORM_MAX)


def in_box(x: float, y: float, box: Sequence[float]) -> bool:
    """Inclusive hit test of a point against a box given in the same space."""
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


# --- prompts (user turns) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """One earlier click: the icon's name and the page it was clicked on."""

    name: str
    page: str


def history_entry(k: int, name: str, page: str) -> str:
    """``stepK: click NAME icon on PAGE.`` (k counts from 1)."""
    return f"step{k}: click {name} icon on {page}."


def history_text(steps: Iterable[HistoryStep]) -> str:
    """The history after ``History: ``: ``Null`` or the steps joined by single spaces."""
    entries = [history_entry(k, s.name, s.page) for k, s in enumerate(steps, start=1)]
    return " ".join(entries) if entries else "Null"


def instruction_text(start: str, target: str, history: str = "Null") -> str:
    """User text of a navigation step, without the image placeholder.

    ``history`` is the output of :func:`history_text` (callers that extend the history turn by
    turn may keep it as a growing string and pass it here).
    """
    return f"Instruction: from {start} to {target}. History: {history}"


def navigation_prompt(start: str, target: str, steps: Sequence[HistoryStep] = (), *,
                      image_placeholder: bool = True) -> str:
    """The user turn of a navigation step (``<image>`` first for ms-swift data)."""
    text = instruction_text(start, target, history_text(steps))
    return IMAGE_PLACEHOLDER + text if image_placeholder else text


def grounding_prompt(name: str, page: str, *, image_placeholder: bool = True) -> str:
    """Grounding question: where is NAME? The answer is a click on it (:func:`click_text`)."""
    text = f"Grounding: where is the {name} icon on {page}?"
    return IMAGE_PLACEHOLDER + text if image_placeholder else text


def captioning_prompt(x: int, y: int, page: str, *, image_placeholder: bool = True) -> str:
    """Captioning question: which icon is at (x,y)? The answer is a click naming it."""
    text = f"Captioning: which icon is at {point_text(x, y)} on {page}?"
    return IMAGE_PLACEHOLDER + text if image_placeholder else text


def strip_image_placeholder(text: str) -> str:
    """Remove the ms-swift ``<image>`` tag for prompts that carry the image as an item."""
    return text.replace(IMAGE_PLACEHOLDER, "")


# --- answers (assistant turns) ----------------------------------------------------------------


def point_text(x: int, y: int) -> str:
    """``(x,y)`` between the box tokens: ``<|box_start|>(x,y)<|box_end|>``."""
    return f"{BOX_START}({x},{y}){BOX_END}"


def click_text(name: str, page: str, x: int, y: int) -> str:
    """Assistant click: ``Explain:click NAME icon on PAGE.<TAB>Action: click(start_box='...')``."""
    return f"Explain:click {name} icon on {page}.\tAction: click(start_box='{point_text(x, y)}')"


COMPLETE_TEXT = "Explain: this is target page.\tAction: complete"


def complete_text() -> str:
    """Assistant complete: ``Explain: this is target page.<TAB>Action: complete``."""
    return COMPLETE_TEXT


# --- typed actions ----------------------------------------------------------------------------

CLICK = "click"
COMPLETE = "complete"
INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Click:
    """A click at a normalized point; ``name``/``page`` are what the explanation claims (or None)."""

    x: int
    y: int
    name: str | None = None
    page: str | None = None
    kind: str = CLICK

    def __post_init__(self) -> None:
        if not (0 <= self.x <= NORM_MAX and 0 <= self.y <= NORM_MAX):
            raise ValueError(f"click ({self.x},{self.y}) outside 0..{NORM_MAX}")


@dataclass(frozen=True, slots=True)
class Complete:
    """The agent declares that the current page is the target."""

    kind: str = COMPLETE


@dataclass(frozen=True, slots=True)
class Invalid:
    """Text that is no action; ``reason`` says why (goes to ``info['last_action_error']``)."""

    reason: str
    kind: str = INVALID


Action = Union[Click, Complete, Invalid]


def render_action(action: Click | Complete) -> str:
    """Typed action -> the exact assistant text (inverse of :func:`parse_action`)."""
    if isinstance(action, Complete):
        return complete_text()
    if action.name is None or action.page is None:
        raise ValueError("a click needs name and page to be rendered as model text")
    return click_text(action.name, action.page, action.x, action.y)


# Strict grammar (the format reward): exactly one of the two lines, nothing around them.
_NAME = r"[^\s]+"
_PAGE = r"page_\d+"
_STRICT_CLICK = re.compile(
    rf"Explain:click (?P<name>{_NAME}) icon on (?P<page>{_PAGE})\.\tAction: "
    r"click\(start_box='<\|box_start\|>\((?P<x>\d{1,4}),(?P<y>\d{1,4})\)<\|box_end\|>'\)"
)
_STRICT_COMPLETE = re.compile(r"Explain: this is target page\.\tAction: complete")

# Lenient extraction (what the agent did): tolerant of spacing, case and missing box tokens.
_ACTION_CLICK = re.compile(
    r"action\s*:\s*click\s*\(\s*(?:start_box\s*=\s*)?['\"]?\s*(?:<\|box_start\|>)?\s*"
    r"\(\s*(?P<x>-?\d{1,9})\s*,\s*(?P<y>-?\d{1,9})\s*\)",
    re.IGNORECASE,
)
_ACTION_COMPLETE = re.compile(r"action\s*:\s*complete\b", re.IGNORECASE)
_EXPLAIN_CLICK = re.compile(
    rf"explain\s*:\s*click\s+(?P<name>{_NAME})\s+icon\s+on\s+(?P<page>{_PAGE})", re.IGNORECASE
)
_MAX_PARSE_CHARS = 4096  # longer outputs are judged on their first 4096 characters


def is_well_formed(text: str) -> bool:
    """True iff ``text`` is exactly one answer line of the SPEC §3 grammar (coordinates 0..1000)."""
    if not isinstance(text, str):
        return False
    m = _STRICT_CLICK.fullmatch(text)
    if m:
        return int(m["x"]) <= NORM_MAX and int(m["y"]) <= NORM_MAX
    return _STRICT_COMPLETE.fullmatch(text) is not None


def parse_action(text: object) -> Action:
    """Any model output -> :class:`Click`, :class:`Complete` or :class:`Invalid`. Never raises.

    The action is read from ``Action: ...``; the click's name and page come from the explanation
    (``None`` when it names no single-token icon). Coordinates outside 0..1000 are invalid.
    """
    if not isinstance(text, str):
        return Invalid(f"output is {type(text).__name__}, not text")
    head = text[:_MAX_PARSE_CHARS]
    click = _ACTION_CLICK.search(head)
    complete = _ACTION_COMPLETE.search(head)
    if click and (not complete or click.start() < complete.start()):
        x, y = int(click["x"]), int(click["y"])
        if not (0 <= x <= NORM_MAX and 0 <= y <= NORM_MAX):
            return Invalid(f"click ({x},{y}) outside 0..{NORM_MAX}")
        explain = _EXPLAIN_CLICK.search(head, 0, click.start())
        if explain:
            return Click(x, y, explain["name"], explain["page"])
        return Click(x, y)
    if complete:
        return Complete()
    if not head.strip():
        return Invalid("empty output")
    return Invalid("no 'Action: click(...)' or 'Action: complete' found")


def explanation_mentions(text: object, word: str) -> bool:
    """True iff the explanation part (before ``Action:``) mentions ``word`` as a whole token."""
    if not isinstance(text, str):
        return False
    head = text[:_MAX_PARSE_CHARS]
    cut = re.search(r"action\s*:", head, re.IGNORECASE)
    explanation = head[: cut.start()] if cut else head
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", explanation) is not None


# --- prompts parsed back (for trajectories and imported prediction files) ----------------------

_INSTRUCTION = re.compile(r"Instruction: from (?P<start>page_\d+) to (?P<target>page_\d+)\. History: (?P<history>.*)\Z",
                          re.DOTALL)
_HISTORY_ENTRY = re.compile(r"step(?P<k>\d+): click (?P<name>\S+) icon on (?P<page>page_\d+)\.")


def parse_history(text: str) -> list[HistoryStep] | None:
    """Inverse of :func:`history_text` (surrounding spaces ignored): the steps, or None if ``text`` is
    not ``Null`` or steps 1, 2, ... joined by single spaces."""
    history = text.strip()
    if history == "Null":
        return []
    entries = list(_HISTORY_ENTRY.finditer(history))
    if not entries or " ".join(e.group(0) for e in entries) != history:
        return None
    if [e["k"] for e in entries] != [str(k) for k in range(1, len(entries) + 1)]:
        return None
    return [HistoryStep(e["name"], e["page"]) for e in entries]


def parse_instruction(text: str) -> tuple[str, str, list[HistoryStep]] | None:
    """Inverse of :func:`navigation_prompt`: (start, target, history) or None if not a navigation prompt."""
    m = _INSTRUCTION.search(strip_image_placeholder(text))
    if not m:
        return None
    history = parse_history(m["history"])
    return None if history is None else (m["start"], m["target"], history)


def instruction_step(text: str) -> tuple[str, str, int] | None:
    """(start, target, number of history steps) of a navigation prompt, or None (the step index of a
    teacher-forced prompt: its history holds one entry per earlier step)."""
    parsed = parse_instruction(text)
    return None if parsed is None else (parsed[0], parsed[1], len(parsed[2]))


# --- ids of tasks and dataset rows -------------------------------------------------------------

_TASK_ID = re.compile(r"(?P<subtree>page_\d+):(?P<start>page_\d+)->(?P<target>page_\d+)")


def task_id(start: str, target: str, subtree: str | None = None) -> str:
    """``SUBTREE:START->TARGET`` (``START->TARGET`` when the subtree is unknown)."""
    core = f"{start}->{target}"
    return f"{subtree}:{core}" if subtree else core


def parse_task_id(text: str) -> tuple[str, str, str] | None:
    """Inverse of :func:`task_id` with a subtree: (subtree, start, target), or None for another shape."""
    m = _TASK_ID.fullmatch(text)
    return None if m is None else (m["subtree"], m["start"], m["target"])


def step_id(start: str, target: str, step: int, subtree: str | None = None) -> str:
    """Row id of a step sample: ``SUBTREE:START->TARGET#STEP`` (step 0-based; no subtree when unknown)."""
    return f"{task_id(start, target, subtree)}#{step}"


def icon_row_id(kind: str, name: str, index: int) -> str:
    """Row id of a grounding or captioning sample: ``KIND:NAME#INDEX`` (``grounding:home#0``)."""
    return f"{kind}:{name}#{index}"


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&'+\-]*(?:_[A-Za-z0-9&'+\-]+)*_\d+")
BACK, HOME = "back", "home"  # the system buttons: to the parent page, to page_0
SYSTEM_NAMES = (BACK, HOME)


def is_valid_icon_name(name: str) -> bool:
    """``back``, ``home`` or ``<Category>_<N>`` without whitespace."""
    return name in SYSTEM_NAMES or NAME_PATTERN.fullmatch(name) is not None
