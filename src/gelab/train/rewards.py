"""Reward functions of SPEC §6, as pure batch functions on top of :mod:`gelab.format`.

Each function takes the completions and the dataset columns it needs as keyword arguments (ms-swift
passes every column of the row by name), ends with ``**kwargs`` and returns one float per completion.
The ms-swift adapters (``ORM`` subclasses) live in :mod:`gelab.train.swift_plugin`; nothing here imports
ms-swift, so the same functions score completions in tests and in reports.

Single-turn GRPO (ST-RL), each term 0/1 with equal weights (max 4):

- ``type_reward``: the parsed action kind (click / complete) equals the row's ``action``.
- ``coord_reward``: a click lies inside the row's ``bbox_norm`` (inclusive, 0..1000 space); when
  ``complete`` is expected, saying ``complete`` counts as right.
- ``intent_reward``: a click's explanation names the ground-truth element ``gt_name`` exactly; when
  ``complete`` is expected, the explanation mentions "target page".
- ``format_reward``: the completion is exactly one answer line of the SPEC §3 grammar.

Ties: rows label one optimal action (``gt_name``, the documented deterministic rule); the
coordinate and intent terms follow that label, so a click on the other tied button (back vs home)
earns the type and format terms only.

Multi-turn GRPO (MT-RL): ``episode_reward`` is sparse and terminal, 1 iff the episode ended with
``complete`` said on the target page, else 0 (an early ``complete`` earns 0; no step penalty). The
scheduler records the outcome in ``rollout_infos``.
"""

from __future__ import annotations

from typing import Any, Sequence

from gelab import format as fmt

TARGET_PHRASE = "target page"  # what a complete's explanation must mention (SPEC §3 complete text)


def _text(completion: Any) -> Any:
    """ms-swift passes strings; conversational callers pass message lists (last message wins)."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return completion[-1].get("content")
    return completion


def type_score(completion: Any, action: str) -> float:
    """1 iff the parsed action kind equals ``action`` ('click' or 'complete')."""
    return 1.0 if fmt.parse_action(_text(completion)).kind == action else 0.0


def coord_score(completion: Any, action: str, bbox_norm: Sequence[int] | None) -> float:
    """1 iff a click lies inside ``bbox_norm`` (complete expected: iff the output is complete)."""
    parsed = fmt.parse_action(_text(completion))
    if action == fmt.COMPLETE:
        return 1.0 if isinstance(parsed, fmt.Complete) else 0.0
    if not isinstance(parsed, fmt.Click) or bbox_norm is None:
        return 0.0
    return 1.0 if fmt.in_box(parsed.x, parsed.y, bbox_norm) else 0.0


def intent_score(completion: Any, action: str, gt_name: str | None) -> float:
    """1 iff the explanation names ``gt_name`` exactly (complete expected: mentions the target page)."""
    text = _text(completion)
    if action == fmt.COMPLETE:
        return 1.0 if fmt.explanation_mentions(text, TARGET_PHRASE) else 0.0
    parsed = fmt.parse_action(text)
    return 1.0 if isinstance(parsed, fmt.Click) and gt_name is not None and parsed.name == gt_name else 0.0


def format_score(completion: Any) -> float:
    """1 iff the completion is exactly one well-formed answer line."""
    return 1.0 if fmt.is_well_formed(_text(completion)) else 0.0


def st_rl_score(completion: Any, action: str, gt_name: str | None, bbox_norm: Sequence[int] | None) -> dict[str, float]:
    """All four ST-RL terms of one completion (the report's per-term breakdown)."""
    return {"type": type_score(completion, action), "coord": coord_score(completion, action, bbox_norm),
            "intent": intent_score(completion, action, gt_name), "format": format_score(completion)}


# --- batch functions (the reward-function signature) ------------------------------------------


def type_reward(completions: list[Any], action: list[str], **kwargs: Any) -> list[float]:
    """Action type matches (ST-RL term 1)."""
    return [type_score(c, a) for c, a in zip(completions, action, strict=True)]


def coord_reward(completions: list[Any], action: list[str], bbox_norm: list[Sequence[int] | None],
                 **kwargs: Any) -> list[float]:
    """Click inside the ground-truth region; complete right when expected (ST-RL term 2)."""
    return [coord_score(c, a, b) for c, a, b in zip(completions, action, bbox_norm, strict=True)]


def intent_reward(completions: list[Any], action: list[str], gt_name: list[str | None], **kwargs: Any) -> list[float]:
    """Explanation names the element exactly / mentions the target page (ST-RL term 3)."""
    return [intent_score(c, a, g) for c, a, g in zip(completions, action, gt_name, strict=True)]


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """Output matches the SPEC §3 grammar (ST-RL term 4)."""
    return [format_score(c) for c in completions]


def episode_reward(completions: list[Any], rollout_infos: list[dict[str, Any] | None], **kwargs: Any) -> list[float]:
    """MT-RL terminal reward: 1 iff the episode ended with ``complete`` said on the target page."""
    if len(rollout_infos) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(rollout_infos)} rollout_infos")
    return [1.0 if (info or {}).get("success") else 0.0 for info in rollout_infos]
