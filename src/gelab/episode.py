"""One navigation episode as plain, JSON-serializable state: the turn logic of MT-RL rollouts.

A turn: the agent's text is parsed by :func:`gelab.format.parse_action`; ``complete`` ends the episode
(success iff said on the target page, SPEC §6); a click inside an element that leads somewhere moves
to that page and appends ``stepK: click NAME icon on PAGE.`` to the history, where NAME is the element
actually hit (the environment's truth, not the model's claim); a miss or unparseable text changes
nothing and is counted. The step cap is not the episode's business: the scheduler applies it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gelab import format as fmt
from gelab.navigation import Navigator


@dataclass
class Episode:
    """The state of one episode; ``to_json``/``from_json`` round-trip through rollout requests."""

    start: str
    target: str
    page: str
    history: list[list[str]] = field(default_factory=list)  # [name, page] per successful click
    turns: int = 0
    misses: int = 0
    said_complete: bool = False
    reached: bool = False  # the target was visited at any point (lenient)
    last_action_error: str | None = None

    @classmethod
    def begin(cls, start: str, target: str) -> "Episode":
        return cls(start=start, target=target, page=start, reached=start == target)

    @property
    def done(self) -> bool:
        return self.said_complete

    @property
    def success(self) -> bool:
        """Strict success: ``complete`` said on the target page."""
        return self.said_complete and self.page == self.target

    def prompt(self, *, image_placeholder: bool = True) -> str:
        """The user turn for the current page (instruction + history from the format module)."""
        steps = [fmt.HistoryStep(name, page) for name, page in self.history]
        return fmt.navigation_prompt(self.start, self.target, steps, image_placeholder=image_placeholder)

    def act(self, text: object, nav: Navigator) -> None:
        """Apply one agent output to the state (never raises on bad text)."""
        if self.done:
            raise ValueError("episode already ended with complete")
        self.turns += 1
        self.last_action_error = None
        action = fmt.parse_action(text)
        if isinstance(action, fmt.Complete):
            self.said_complete = True
            return
        if isinstance(action, fmt.Invalid):
            self.misses += 1
            self.last_action_error = action.reason
            return
        hotspot = nav.hit(self.page, action.x, action.y)
        if hotspot is None or hotspot.target is None:
            self.misses += 1
            return
        self.history.append([hotspot.name, self.page])
        self.page = hotspot.target
        self.reached = self.reached or self.page == self.target

    def infos(self) -> dict[str, Any]:
        """What the reward and the logs read (``rollout_infos``)."""
        return {"success": self.success, "reached": self.reached, "page": self.page, "turns": self.turns,
                "misses": self.misses, "said_complete": self.said_complete}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Episode":
        return cls(**raw)
