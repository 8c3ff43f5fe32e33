"""The navigation task as a Gymnasium environment (registered as ``gelab/GuiNav-v0``).

## Description
The agent starts on a task's start page with ``History: Null`` and must reach the target page and
say ``complete`` there (SPEC §5).

## Action Space
``Dict(kind=Discrete(2), point=Box(0, 1000, (2,), int64))``: kind 0 = click at ``point``
(normalized 0..1000 canvas coordinates), kind 1 = complete. ``step`` also takes model text (parsed
by :func:`gelab.format.parse_action`) or a typed :class:`gelab.format.Click` / ``Complete``.
Hit tests are inclusive and done on ``bbox_norm`` (``round(px * 1000 / size)`` per axis).

## Observation Space
``Dict(image=Box(0, 255, (S, S, 3), uint8), text=Text)``: the current page's model image
(S = the environment's model image size; a fresh copy each step) and the user text
``Instruction: from page_S to page_T. History: ...`` written by the format module. With
``obs_mode="text"`` the observation is ``Dict(text=Text)`` alone.

## Rewards
1.0 when ``complete`` is said on the target page, else 0.0 (sparse, no step penalty; an early
``complete`` earns 0 — SPEC §6).

## Episode End
The turn rule is the episode engine's (:mod:`gelab.tasks.episode`), shared with MT-RL and the
interactive benchmark. Terminated on ``complete`` (anywhere). Truncated by ``TimeLimit`` after
``max_episode_steps`` (registered default :data:`gelab.tasks.episode.MAX_STEPS` = 12, the paper's
cap). A click that hits nothing (or an element that leads nowhere) changes nothing and is counted in
``info["misses"]``; unparseable text changes nothing, is counted in ``info["invalid"]`` and sets
``info["last_action_error"]`` — never an exception.

## Info
``page``, ``target``, ``success`` (strict: complete on target), ``reached`` (lenient: target
visited at any point), ``misses``, ``invalid``, ``history`` (the history text), ``hit`` (element
name or None), ``last_action_error`` (the turn's error: "miss", "NAME leads nowhere" or why the text
is invalid; "" when none),
``optimal_actions`` (every optimal next action from the current page).

## Arguments
``env_dir`` (environment folder), ``subtree`` (root page whose task universe is sampled on reset;
None: every ordered pair of pages), ``render_mode`` ("rgb_array" returns the full canvas).
``obs_mode`` ("image" or "text"). ``reset(options={"start": ..., "target": ...})`` fixes the task.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gelab import format as fmt
from gelab.env.envdir import load_environment
from gelab.env.navigation import Navigator
from gelab.tasks.episode import MAX_STEPS, Episode, Turn
from gelab.tasks.universe import Task, task_universe

ENV_ID = "gelab/GuiNav-v0"
CLICK_KIND, COMPLETE_KIND = 0, 1
TEXT_MAX_LENGTH = 8192
TEXT_CHARSET = string.printable
OBS_MODES = ("image", "text")  # "text" leaves out the image: for search, RL on text and speed

class GuiNavEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(self, env_dir: str | Path, subtree: str | None = None, render_mode: str | None = None,
                 obs_mode: str = "image") -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.environment = load_environment(env_dir)
        self.nav = Navigator(self.environment.structure)
        self.render_mode = render_mode
        size = self.environment.settings.model_image_size
        self.obs_mode = obs_mode
        obs_spaces: dict[str, spaces.Space] = {"text": spaces.Text(TEXT_MAX_LENGTH, min_length=1, charset=TEXT_CHARSET)}
        if obs_mode == "image":
            obs_spaces["image"] = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Dict({
            "kind": spaces.Discrete(2),
            "point": spaces.Box(0, fmt.NORM_MAX, (2,), np.int64),
        })
        pages = list(self.environment.structure.pages)
        self.tasks: list[Task] = (task_universe(self.environment.structure, subtree, self.nav) if subtree else
                                  [Task(s, t, "", self.nav.distances_to(t)[s]) for s in pages for t in pages if s != t])
        self._images: dict[str, np.ndarray] = {}
        self.episode: Episode | None = None

    # --- observation ---------------------------------------------------------------------------

    def _image(self, page: str) -> np.ndarray:
        img = self._images.get(page)
        if img is None:
            from PIL import Image

            with Image.open(self.environment.model_image_path(page)) as im:
                img = np.asarray(im.convert("RGB"), dtype=np.uint8)
            img.setflags(write=False)
            self._images[page] = img
        return img

    def _obs(self) -> dict[str, Any]:
        assert self.episode is not None
        text = self.episode.prompt()
        if self.obs_mode == "text":
            return {"text": text}
        return {"image": self._image(self.episode.page).copy(), "text": text}  # a fresh array: callers may keep it

    def _info(self, turn: Turn | None = None) -> dict[str, Any]:
        ep = self.episode
        assert ep is not None
        return {"page": ep.page, "target": ep.task.target, "success": ep.success, "reached": ep.reached,
                "misses": ep.misses, "invalid": ep.invalid, "history": fmt.history_text(ep.history),
                "hit": turn.hit if turn else None, "last_action_error": (turn.error if turn else None) or "",
                "optimal_actions": self.nav.optimal_actions(ep.page, ep.task.target)}

    # --- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "start" in options or "target" in options:
            start, target = options.get("start"), options.get("target")
            pages = self.environment.structure.pages
            if start not in pages or target not in pages or start == target:
                raise ValueError(f"options need two different pages 'start' and 'target', got {start!r}, {target!r}")
            task = Task(start, target, options.get("subtree", ""), self.nav.distances_to(target)[start])
        else:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self.episode = Episode(task, max_steps=None)  # the cap is TimeLimit's
        return self._obs(), self._info()

    def step(self, action: Any):
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        turn = self.episode.act(self._to_action(action), self.nav)
        terminated = self.episode.said_complete
        return self._obs(), self.episode.reward, terminated, False, self._info(turn)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from PIL import Image

        if self.episode is None:
            raise RuntimeError("call reset() before render()")
        with Image.open(self.environment.image_path(self.episode.page)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _to_action(action: Any) -> Any:
        """A Dict-space action -> a typed action; text and typed actions go to the engine as they are."""
        if isinstance(action, dict) and "kind" in action:
            if int(action["kind"]) == COMPLETE_KIND:
                return fmt.Complete()
            point = action.get("point")
            try:
                x, y = int(point[0]), int(point[1])  # type: ignore[index]
            except (TypeError, ValueError, IndexError):
                return fmt.Invalid(f"click point {point!r} is not two integers")
            if not (0 <= x <= fmt.NORM_MAX and 0 <= y <= fmt.NORM_MAX):
                return fmt.Invalid(f"click ({x},{y}) outside 0..{fmt.NORM_MAX}")
            return fmt.Click(x, y)
        return action


def register() -> None:
    """Register ``gelab/GuiNav-v0`` (idempotent); ``gym.make(ENV_ID, env_dir=...)`` then works."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="gelab.tasks.gym_env:GuiNavEnv", max_episode_steps=MAX_STEPS)


register()
