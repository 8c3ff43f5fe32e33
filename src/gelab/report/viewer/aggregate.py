"""What happened in an episode, and tallies over a model's episodes. Pure functions of logged rows.

Outcome of an episode (exactly one):

- ``success``: ``complete`` said on the target page (strict success, SPEC §5);
- ``premature_complete``: ``complete`` said on another page (the episode ends with reward 0);
- ``cap``: the step cap was reached without ``complete`` (missing complete; the target may have
  been visited, which is lenient success);
- ``unfinished``: the log stops before the episode ended (a run still going, or cut short).

Failure marks (any number): a **loop** (some page entered twice: the agent came back to a page it had
left; misses and invalid outputs stay on the page and are not loops), a **miss** (a click on nothing,
or on an element that leads nowhere), an **invalid** output (unparseable text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from gelab import format as fmt
from gelab.eval.intervals import wilson

SUCCESS, PREMATURE, CAP, UNFINISHED = "success", "premature_complete", "cap", "unfinished"
OUTCOMES = (SUCCESS, PREMATURE, CAP, UNFINISHED)
LOOP, MISS, INVALID = 1, 2, 4  # bits of Summary.flags

Row = Mapping[str, Any]


def visited_pages(start: str, rows: Sequence[Row]) -> list[str]:
    """The pages in the order the agent stood on them: ``start``, then one entry per move."""
    pages = [start]
    for r in rows:
        if r["new_page"] != r["page"]:
            pages.append(r["new_page"])
    return pages


def has_loop(start: str, rows: Sequence[Row]) -> bool:
    """True when some page was entered twice (the agent returned to a page it had left)."""
    pages = visited_pages(start, rows)
    return len(set(pages)) < len(pages)


def outcome(target: str, rows: Sequence[Row]) -> str:
    """One of :data:`OUTCOMES` (see the module docstring)."""
    if not rows or not rows[-1]["done"]:
        return UNFINISHED
    last = rows[-1]
    if last["action"] == fmt.COMPLETE:
        return SUCCESS if last["page"] == target else PREMATURE
    return CAP


def reached(start: str, target: str, rows: Sequence[Row]) -> bool:
    """Lenient success: the target was visited at any point."""
    return start == target or any(r["new_page"] == target for r in rows)


def is_miss(row: Row) -> bool:
    return row["action"] == fmt.CLICK and row["error"] is not None


def missed_icon(row: Row) -> str:
    """The icon a missing click is charged to: the element hit when it leads nowhere, else the name
    the explanation claimed (``(no name)`` when it claimed none)."""
    if row["hit"] is not None:
        return str(row["hit"])
    return str(row["claimed"]) if row["claimed"] else "(no name)"


@dataclass(frozen=True, slots=True)
class Summary:
    """One episode in numbers: what the index and the tallies need."""

    outcome: str
    reached: bool
    loop: bool
    misses: int
    invalid: int
    steps: int

    @property
    def flags(self) -> int:
        return (LOOP if self.loop else 0) | (MISS if self.misses else 0) | (INVALID if self.invalid else 0)


def summarize(start: str, target: str, rows: Sequence[Row]) -> Summary:
    return Summary(outcome(target, rows), reached(start, target, rows), has_loop(start, rows),
                   sum(is_miss(r) for r in rows), sum(r["action"] == fmt.INVALID for r in rows), len(rows))


def rate_with_interval(successes: int, n: int) -> dict[str, Any]:
    """``{"k", "rate", "low", "high"}`` in percent, rounded to 0.01, with the 95 % Wilson interval of
    :func:`gelab.eval.intervals.wilson` (rate and bounds None when ``n`` is 0)."""
    ci = wilson(successes, n)
    return {"k": successes, "rate": round(100 * successes / n, 2) if n else None,
            "low": round(ci[0], 2) if ci else None, "high": round(ci[1], 2) if ci else None}


def success_by_length(items: Iterable[tuple[int, Summary]]) -> list[dict[str, Any]]:
    """Per path length: episodes, strict and lenient success with 95% Wilson intervals (episode level:
    the k attempts of a task count as k trials)."""
    strict: Counter[int] = Counter()
    lenient: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for length, s in items:
        total[length] += 1
        strict[length] += s.outcome == SUCCESS
        lenient[length] += s.outcome == SUCCESS or s.reached
    return [{"length": n, "episodes": total[n], "strict": rate_with_interval(strict[n], total[n]),
             "lenient": rate_with_interval(lenient[n], total[n])} for n in sorted(total)]


def _ranked(counter: Counter[str], key: Any) -> list[list[Any]]:
    return [[name, count] for name, count in sorted(counter.items(), key=lambda kv: (-kv[1], key(kv[0])))]


def _page_key(page: str) -> tuple[int, str]:
    tail = page.rsplit("_", 1)[-1]
    return (int(tail), page) if tail.isdigit() else (-1, page)


def step_tallies(episodes: Iterable[Sequence[Row]]) -> dict[str, list[list[Any]]]:
    """Misses by page and by icon, invalid outputs by page and by reason; each ``[[name, count], ...]``,
    most frequent first (ties: page number, then name)."""
    miss_page: Counter[str] = Counter()
    miss_icon: Counter[str] = Counter()
    invalid_page: Counter[str] = Counter()
    invalid_reason: Counter[str] = Counter()
    for rows in episodes:
        for r in rows:
            if is_miss(r):
                miss_page[r["page"]] += 1
                miss_icon[missed_icon(r)] += 1
            elif r["action"] == fmt.INVALID:
                invalid_page[r["page"]] += 1
                invalid_reason[str(r["error"])] += 1
    return {"misses_by_page": _ranked(miss_page, _page_key), "misses_by_icon": _ranked(miss_icon, str),
            "invalid_by_page": _ranked(invalid_page, _page_key), "invalid_by_reason": _ranked(invalid_reason, str)}


def failure_summary(items: Sequence[tuple[int, Summary, Sequence[Row]]]) -> dict[str, Any]:
    """A model's summary from (path length, summary, rows) of each of its episodes."""
    outcomes = Counter(s.outcome for _, s, _ in items)
    n = len(items)
    strict = outcomes[SUCCESS]
    lenient = sum(s.outcome == SUCCESS or s.reached for _, s, _ in items)
    return {
        "episodes": n,
        "outcomes": {o: outcomes[o] for o in OUTCOMES},
        "strict": rate_with_interval(strict, n),
        "lenient": rate_with_interval(lenient, n),
        "loops": sum(s.loop for _, s, _ in items),
        "reached_without_complete": sum(s.outcome == CAP and s.reached for _, s, _ in items),
        "steps": sum(s.steps for _, s, _ in items),
        "misses": sum(s.misses for _, s, _ in items),
        "invalid": sum(s.invalid for _, s, _ in items),
        "by_length": success_by_length((length, s) for length, s, _ in items),
        **step_tallies(rows for _, _, rows in items),
    }
