"""The episode engine: the state of one navigation episode and its turn rule (SPEC §5, §6).

Every driver plays episodes through this module and re-implements none of it: the Gymnasium env
(:mod:`gelab.tasks.gym_env`), the MT-RL scheduler (:mod:`gelab.train.swift_plugin`) and the
interactive harness (:mod:`gelab.eval.interactive`).

The turn rule. The agent's output is parsed by :func:`gelab.format.parse_action` (typed actions are
taken as they are):

- ``complete`` ends the episode (strict success iff said on the target page:
  :meth:`gelab.tasks.universe.Task.is_successful`);
- a click inside an element that leads somewhere moves to that page and appends
  ``stepK: click NAME icon on PAGE.`` to the history, NAME being the element actually hit (the
  environment's truth, not the model's claim);
- a click that hits nothing, or an element that leads nowhere, changes nothing and counts as a
  **miss**;
- unparseable text changes nothing and counts as **invalid** (its reason is the turn's ``error``);
- after ``max_steps`` turns without ``complete`` the episode is **truncated** (``None``: no cap, as
  in the Gymnasium env, where ``TimeLimit`` owns the cap).

What the agent is shown (:meth:`Episode.prompt`): the instruction and the textual history written by
the format module, with the current page's image only — past screenshots are never kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gelab import format as fmt
from gelab.env.navigation import Navigator
from gelab.tasks.universe import Task

MAX_STEPS = 12  # the paper's step cap ("e.g. 12"): the default of every driver


@dataclass(frozen=True, slots=True)
class Turn:
    """What one turn did: the row a trajectory log keeps (besides prompt and raw output)."""

    step: int  # 0-based index of the turn in its episode
    page: str  # the page the agent saw
    action: str  # fmt.CLICK, fmt.COMPLETE or fmt.INVALID
    click: tuple[int, int] | None  # normalized point of a click
    claimed: str | None  # the icon name the explanation claims
    hit: str | None  # the element under the click (None: nothing)
    new_page: str  # the page after the turn
    error: str | None  # "miss", "NAME leads nowhere", or why the output is invalid
    done: bool  # the episode ended with this turn (complete or the cap)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["click"] = list(self.click) if self.click else None
        return row


@dataclass
class Episode:
    """One episode: task, position, textual history and counters; ``to_json``/``from_json`` round-trip."""

    task: Task
    max_steps: int | None = MAX_STEPS
    page: str = ""
    history: list[fmt.HistoryStep] = field(default_factory=list)
    steps: int = 0
    misses: int = 0
    invalid: int = 0
    said_complete: bool = False
    reached: bool = False  # lenient: the target was visited at any point

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1 or None, got {self.max_steps}")
        if not self.page:
            self.page = self.task.start
            self.reached = self.page == self.task.target

    # --- state ---------------------------------------------------------------------------------

    @property
    def success(self) -> bool:
        """Strict success: ``complete`` said on the target page (the task's own predicate)."""
        return self.task.is_successful(self.page, self.said_complete) == 1.0

    @property
    def truncated(self) -> bool:
        return not self.said_complete and self.max_steps is not None and self.steps >= self.max_steps

    @property
    def done(self) -> bool:
        return self.said_complete or self.truncated

    @property
    def reward(self) -> float:
        """The MT-RL reward (SPEC §6): 1 only for ``complete`` on the target, else 0."""
        return float(self.success)

    # --- what the agent sees -------------------------------------------------------------------

    def prompt(self) -> str:
        """The user text of the current turn (no image placeholder): instruction + history."""
        return fmt.instruction_text(self.task.start, self.task.target, fmt.history_text(self.history))

    # --- the turn rule -------------------------------------------------------------------------

    def act(self, output: object, nav: Navigator) -> Turn:
        """Apply one agent output (model text or a typed :mod:`gelab.format` action); never raises on bad text."""
        if self.done:
            raise ValueError(f"episode {self.task.id} has ended; no further turn")
        page, step = self.page, self.steps
        action = output if isinstance(output, (fmt.Click, fmt.Complete, fmt.Invalid)) else fmt.parse_action(output)
        click = claimed = hit = error = None
        if isinstance(action, fmt.Complete):
            self.said_complete = True
        elif isinstance(action, fmt.Click):
            click, claimed = (action.x, action.y), action.name
            spot = nav.hit(page, action.x, action.y)
            hit = spot.name if spot is not None else None
            if spot is not None and spot.target is not None:
                self.history.append(fmt.HistoryStep(spot.name, page))
                self.page = spot.target
                self.reached = self.reached or self.page == self.task.target
            else:
                self.misses += 1
                error = "miss" if spot is None else f"{spot.name} leads nowhere"
        else:
            self.invalid += 1
            error = action.reason
        self.steps += 1
        return Turn(step, page, action.kind, click, claimed, hit, self.page, error, self.done)

    # --- serialization -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task.to_json(), "max_steps": self.max_steps, "page": self.page,
                "history": [[s.name, s.page] for s in self.history], "steps": self.steps,
                "misses": self.misses, "invalid": self.invalid, "said_complete": self.said_complete,
                "reached": self.reached}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Episode":
        return cls(task=Task(**raw["task"]), max_steps=raw["max_steps"], page=raw["page"],
                   history=[fmt.HistoryStep(name, page) for name, page in raw["history"]], steps=raw["steps"],
                   misses=raw["misses"], invalid=raw["invalid"], said_complete=raw["said_complete"],
                   reached=raw["reached"])

    def infos(self) -> dict[str, Any]:
        """What the MT-RL reward and logs read (``rollout_infos``)."""
        return {"success": self.success, "reached": self.reached, "page": self.page, "turns": self.steps,
                "misses": self.misses, "invalid": self.invalid, "said_complete": self.said_complete}
