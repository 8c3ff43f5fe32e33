"""Static benchmark, inference side: answer every sample of a static file with a policy.

Each sample (a row of ``static_*.jsonl``) becomes one :class:`Observation` (its page, its
teacher-forced history and its image); answers are appended to the predictions file batch by batch
in the project layout (the sample's scoring columns plus ``prediction``). Samples whose id is
already in the file are skipped, so a killed run restarts where it stopped.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from gelab import format as fmt
from gelab.errors import InputError, quote
from gelab.eval.policies import Observation, Policy
from gelab.eval.records import AppendLog
from gelab.eval.subsets import stratified

SCORING_COLUMNS = ("id", "kind", "subtree", "start", "target", "path_length", "step", "page", "action", "gt_name",
                   "bbox_norm")


def select_samples(samples: Sequence[dict[str, Any]], limit_tasks: int | None, seed: int) -> list[dict[str, Any]]:
    """All steps of ``limit_tasks`` tasks, stratified by path length (None: every sample)."""
    if limit_tasks is None:
        return list(samples)
    tasks = list(dict.fromkeys((r["start"], r["target"], r["path_length"]) for r in samples if "start" in r))
    keep = set(stratified(tasks, limit_tasks, lambda t: t[2], seed))
    return [r for r in samples if (r.get("start"), r.get("target"), r.get("path_length")) in keep]


def check_samples(samples: Sequence[dict[str, Any]], samples_name: str) -> None:
    """Every sample can be shown to a policy and scored: ``id``, ``page``, a user message, an image path
    and consistent scoring columns, every task whole (raises naming the file and line)."""
    from gelab.eval.static import _project_record, check_records

    records = []
    for i, row in enumerate(samples, start=1):
        where = f"{samples_name}: line {i}"
        messages, images = row.get("messages"), row.get("images")
        if not isinstance(row.get("page"), str) or "id" not in row:
            raise InputError(f"{where}: a sample needs 'id' and 'page'")
        if not isinstance(messages, list) or not any(isinstance(m, dict) and m.get("role") == "user"
                                                     and isinstance(m.get("content"), str) for m in messages):
            raise InputError(f"{where}: messages: expected a list with a user message")
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise InputError(f"{where}: images: expected a list of image paths")
        records.append(_project_record({**row, "prediction": None}, where))
    check_records(records)


def observation(sample: dict[str, Any], where: str) -> Observation:
    user = next((m["content"] for m in sample["messages"] if m["role"] == "user"), None)
    if not isinstance(user, str):
        raise InputError(f"{where}: no user message")
    parsed = fmt.parse_instruction(user)
    history = tuple(parsed[2]) if parsed else ()
    return Observation(str(sample["id"]), int(sample.get("step", 0)), sample.get("start", ""),
                       sample.get("target", ""), sample["page"], history, fmt.strip_image_placeholder(user),
                       str(sample["images"][0]))


def predict(samples: Sequence[dict[str, Any]], policy: Policy | None, log: AppendLog, *, batch_size: int,
            samples_name: str = "samples", progress: Callable[[int, int], None] | None = None) -> int:
    """Append to the open predictions ``log`` a prediction for every sample it does not answer yet; returns
    how many were made. ``policy`` may be None when the log already answers every sample."""
    done = {str(r.get("id")) for r in log.rows}
    known = {str(s["id"]) for s in samples}
    stray = next((r for r in log.rows if str(r.get("id")) not in known), None)
    if stray is not None:
        raise InputError(f"{log.path}: row {quote(stray.get('id'))} is not a sample of {samples_name} "
                         f"(predictions of another run? remove the file or choose another)")
    todo = [s for s in samples if str(s["id"]) not in done]
    if todo and policy is None:
        raise InputError(f"{log.path}: {len(todo)} samples still need a policy")
    for lo in range(0, len(todo), batch_size):
        batch = todo[lo:lo + batch_size]
        obs = [observation(s, f"{samples_name}: {s['id']}") for s in batch]
        answers = policy.act(obs)
        log.write([{**{k: s.get(k) for k in SCORING_COLUMNS}, "prediction": a} for s, a in zip(batch, answers)])
        if progress is not None:
            progress(len(samples) - len(todo) + lo + len(batch), len(samples))
    return len(todo)
