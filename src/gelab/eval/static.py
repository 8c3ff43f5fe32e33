"""Static (teacher-forced) benchmark: read prediction files and score them as SPEC §5.

A step is right iff:

- ``complete`` step: the prediction parses as ``complete``;
- click step (navigation, captioning, grounding): the prediction parses as a click whose point lies
  inside the ground-truth ``bbox_norm`` (inclusive) **and** whose explanation names the
  ground-truth icon exactly.

Anything else — unparseable, empty, non-text, out of the screen, a name with spaces — is wrong.

Buckets: **Edge** = the first step of every task (``step == 0``), **Path** = the other click steps,
**Overall** = every navigation step; per path length, step accuracy and task success (all L+1 steps
right). Captioning and grounding rows, when present, are scored on their own. All numbers are
percentages 0–100, each with its 95 % Wilson interval as ``KEY_ci95`` = [low, high].

Two file layouts are read (JSONL, or one JSON array):

- the project's: rows with ``id``, ``subtree``, ``start``, ``target``, ``path_length``, ``step``,
  ``action``, ``gt_name``, ``bbox_norm`` and ``prediction`` (the static data rows plus ``prediction``);
- the released evaluation layout: rows with ``messages`` [user, ground-truth assistant],
  ``bbox_norm``, ``path``, ``task`` and ``prediction``; the step and the ground truth are read back
  from the messages with :mod:`gelab.format`.

Ground truth comes from the samples, never from a predictions file (SPEC §5): given the samples, a
prediction row contributes its ``id`` (released layout: the start, target and step of its user
message) and its ``prediction``, and nothing else is read from it, so editing any other field of a
row cannot change a score. Without the samples a file is scored on its own ground truth, after it
is checked for internal consistency: one row per step of every task (no step under two ids), one
subtree, ``complete`` exactly on the last step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import msgspec

from gelab import format as fmt
from gelab.errors import InputError, quote
from gelab.eval.intervals import COUNT, SUFFIX, wilson
from gelab.eval.schema import Static, StaticPath, interval, to_json

NAVIGATION = "navigation"
ICON_KINDS = ("captioning", "grounding")


class PredictionFileError(InputError):
    """A prediction file that cannot be scored; the message names the file and the row."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One scored step: the ground truth of a sample and the model's raw output."""

    where: str  # "FILE: line N" for error messages
    id: str
    kind: str  # navigation | captioning | grounding
    subtree: str | None  # None when the layout does not say (released layout)
    start: str | None
    target: str | None
    path_length: int | None
    step: int | None
    action: str  # click | complete
    gt_name: str | None
    bbox_norm: tuple[int, int, int, int] | None
    prediction: object  # whatever the file holds; only text can be right

    @property
    def task_key(self) -> tuple[str | None, str | None, str | None]:
        return self.subtree, self.start, self.target


# --- reading ----------------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[tuple[int, Any]]:
    """(line or index, row) pairs of a JSONL file (:func:`gelab.io.jsonl_lines`) or a JSON array file;
    bad JSON names the line."""
    from gelab.io import jsonl_lines

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PredictionFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.lstrip()[:1] == b"[":
        try:
            rows = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise PredictionFileError(f"{path}: not a JSON array ({exc})") from None
        return list(enumerate(rows, start=1))
    return jsonl_lines(data, path, PredictionFileError)


def released_step(user: object, where: str) -> tuple[str, str, int]:
    """(start, target, step) of the user message of a released-layout row: the step is the length of
    its history (:func:`gelab.format.instruction_step`); anything else raises naming ``where``."""
    parsed = fmt.instruction_step(user) if isinstance(user, str) else None
    if parsed is None:
        raise PredictionFileError(f"{where}: user message is not a navigation instruction: {quote(str(user), 80)}")
    return parsed


def _box(value: Any, where: str) -> tuple[int, int, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise PredictionFileError(f"{where}: bbox_norm must be four numbers, got {quote(value)}")
    return tuple(value)  # type: ignore[return-value]


def _project_record(row: dict[str, Any], where: str) -> StepRecord:
    try:
        kind = row.get("kind", NAVIGATION)
        action = row["action"]
        if action not in (fmt.CLICK, fmt.COMPLETE):
            raise PredictionFileError(f"{where}: action must be 'click' or 'complete', got {quote(action)}")
        box = _box(row["bbox_norm"], where) if action == fmt.CLICK else None
        if kind == NAVIGATION:
            step, length = row["step"], row["path_length"]
            if not isinstance(step, int) or not isinstance(length, int) or not 0 <= step <= length:
                raise PredictionFileError(f"{where}: bad step {quote(step)} of path_length {quote(length)}")
            return StepRecord(where, str(row["id"]), kind, row["subtree"], row["start"], row["target"], length,
                              step, action, row["gt_name"], box, row["prediction"])
        if kind in ICON_KINDS:
            return StepRecord(where, str(row["id"]), kind, row.get("subtree"), None, None, None, None, action,
                              row["gt_name"], box, row["prediction"])
        raise PredictionFileError(f"{where}: unknown kind {quote(kind)}")
    except KeyError as exc:
        raise PredictionFileError(f"{where}: missing field {quote(exc.args[0])}") from None


def _release_record(row: dict[str, Any], where: str) -> StepRecord:
    try:
        messages = row["messages"]
        user = next(m["content"] for m in messages if m.get("role") == "user")
        truth = next(m["content"] for m in messages if m.get("role") == "assistant")
        length, prediction = row["path"], row["prediction"]
    except (KeyError, StopIteration, TypeError, AttributeError):
        raise PredictionFileError(f"{where}: released layout needs messages [user, assistant], path and "
                                  f"prediction") from None
    start, target, step = released_step(user, where)
    if not isinstance(length, int) or not 0 <= step <= length:
        raise PredictionFileError(f"{where}: step {step} does not fit path {quote(length)}")
    gt = fmt.parse_action(truth)
    if isinstance(gt, fmt.Complete):
        action, name, box = fmt.COMPLETE, None, None
    elif isinstance(gt, fmt.Click) and gt.name is not None:
        action, name, box = fmt.CLICK, gt.name, _box(row.get("bbox_norm"), where)
    else:
        raise PredictionFileError(f"{where}: ground-truth assistant message is not an answer: {quote(str(truth), 80)}")
    return StepRecord(where, fmt.step_id(start, target, step), NAVIGATION, None, start, target, length, step, action,
                      name, box, prediction)


def load_predictions(path: str | Path) -> list[StepRecord]:
    """Every row of a prediction file as a :class:`StepRecord`, in file order (either layout)."""
    records = []
    for line, row in read_rows(path):
        where = f"{path}: line {line}"
        if not isinstance(row, dict):
            raise PredictionFileError(f"{where}: expected a JSON object")
        if "id" in row and "action" in row:
            records.append(_project_record(row, where))
        elif "messages" in row:
            records.append(_release_record(row, where))
        else:
            raise PredictionFileError(f"{where}: neither the project layout (id, action, ...) nor the released "
                                      f"layout (messages, path, ...)")
    return records


# --- consistency ------------------------------------------------------------------------------


def check_records(records: Sequence[StepRecord]) -> None:
    """No duplicated ids, one subtree per file, and every task has exactly its steps 0..L."""
    seen: dict[str, StepRecord] = {}
    first_subtree = next((r for r in records if r.subtree is not None and r.kind == NAVIGATION), None)
    steps: dict[tuple[str | None, str | None, str | None], dict[int, StepRecord]] = {}
    for r in records:
        first = seen.get(r.id)
        if first is not None:
            raise PredictionFileError(f"{r.where}: duplicate row {quote(r.id)} "
                                      f"(first at {first.where.rsplit(': ', 1)[-1]})")
        seen[r.id] = r
        if first_subtree is not None and r.subtree is not None and r.subtree != first_subtree.subtree \
                and r.kind == NAVIGATION:
            raise PredictionFileError(f"{r.where}: row {quote(r.id)} is from subtree {r.subtree}, the file is subtree "
                                      f"{first_subtree.subtree} (from {first_subtree.where.rsplit(': ', 1)[-1]})")
        if r.kind == NAVIGATION:
            by_step = steps.setdefault(r.task_key, {})
            if r.step in by_step:
                raise PredictionFileError(f"{r.where}: row {quote(r.id)} repeats step {r.step} of task "
                                          f"{r.start}->{r.target} "
                                          f"(already row {quote(by_step[r.step].id)} at "  # type: ignore[index]
                                          f"{by_step[r.step].where.rsplit(': ', 1)[-1]})")  # type: ignore[index]
            if (r.action == fmt.COMPLETE) != (r.step == r.path_length):
                raise PredictionFileError(f"{r.where}: row {quote(r.id)}: step {r.step} of a {r.path_length}-click "
                                          f"task must be {'complete' if r.step == r.path_length else 'a click'}, "
                                          f"got {r.action}")
            by_step[r.step] = r  # type: ignore[index]
    for task, by_step in steps.items():
        any_row = next(iter(by_step.values()))
        lengths = {s.path_length for s in by_step.values()}
        if len(lengths) != 1:
            raise PredictionFileError(f"{any_row.where}: task {any_row.start}->{any_row.target} has rows with "
                                      f"different path lengths {sorted(lengths)}")
        for k in range(any_row.path_length + 1):  # type: ignore[operator]
            if k not in by_step:
                raise PredictionFileError(
                    f"{any_row.where}: missing row "
                    f"{quote(fmt.step_id(any_row.start, any_row.target, k, task[0]))} "  # type: ignore[arg-type]
                    f"(task {any_row.start}->{any_row.target} has {any_row.path_length + 1} steps)")  # type: ignore[operator]


def _sample_key(start: object, target: object, step: object) -> tuple[object, object, object]:
    return start, target, step


def join_samples(predictions: str | Path, samples: Sequence[dict[str, Any]],
                 samples_name: str = "samples") -> list[StepRecord]:
    """One record per sample, ground truth from the sample and ``prediction`` from the file.

    A prediction row is matched by its ``id`` (project layout) or by the start, target and step of
    its user message (released layout); no other field of the row is read. Every sample needs
    exactly one row: a missing, extra or repeated row raises naming the file and line.
    """
    truth = [_project_record({**row, "prediction": None}, f"{samples_name}: line {i}")
             for i, row in enumerate(samples, start=1)]
    check_records(truth)
    by_id = {r.id: r for r in truth}
    by_step = {_sample_key(r.start, r.target, r.step): r for r in truth if r.kind == NAVIGATION}
    answers: dict[str, tuple[str, object]] = {}  # sample id -> (where, prediction)
    for line, row in read_rows(predictions):
        where = f"{predictions}: line {line}"
        if not isinstance(row, dict):
            raise PredictionFileError(f"{where}: expected a JSON object")
        if "prediction" not in row:
            raise PredictionFileError(f"{where}: missing field 'prediction'")
        if "id" in row:
            label, sample = repr(str(row["id"])), by_id.get(str(row["id"]))
        elif "messages" in row:
            user = next((m.get("content") for m in row["messages"] if isinstance(m, dict) and m.get("role") == "user"),
                        None) if isinstance(row["messages"], list) else None
            parsed = released_step(user, where)
            label, sample = repr(fmt.step_id(*parsed)), by_step.get(_sample_key(*parsed))
        else:
            raise PredictionFileError(f"{where}: a prediction row needs 'id' (project layout) or 'messages' "
                                      f"(released layout)")
        if sample is None:
            raise PredictionFileError(f"{where}: row {label} matches no row of {samples_name}")
        if sample.id in answers:
            raise PredictionFileError(f"{where}: duplicate row {label} (first at "
                                      f"{answers[sample.id][0].rsplit(': ', 1)[-1]})")
        answers[sample.id] = (where, row["prediction"])
    missing = [r for r in truth if r.id not in answers]
    if missing:
        raise PredictionFileError(f"{samples_name}: row {quote(missing[0].id)} has no prediction "
                                  f"({len(missing)} rows missing)")
    return [replace(r, where=answers[r.id][0], prediction=answers[r.id][1]) for r in truth]


# --- scoring ----------------------------------------------------------------------------------


def step_correct(record: StepRecord, action: fmt.Action | None = None) -> bool:
    """SPEC §5 step correctness (see the module docstring); ``action`` = the parsed prediction. Never raises."""
    if action is None:
        action = fmt.parse_action(record.prediction)
    if record.action == fmt.COMPLETE:
        return isinstance(action, fmt.Complete)
    return (isinstance(action, fmt.Click) and action.name == record.gt_name
            and record.bbox_norm is not None and fmt.in_box(action.x, action.y, record.bbox_norm))


def percent(right: int, total: int) -> float | None:
    """100 · right / total, or None for an empty bucket."""
    return 100.0 * right / total if total else None


def static_metrics(records: Sequence[StepRecord]) -> dict[str, Any]:
    """The metrics JSON of the static benchmark, built as :class:`gelab.eval.schema.Static`: each
    percentage with its 95 % Wilson interval and the steps or tasks it is over beside it (``KEY_ci95``,
    ``KEY_n``; :mod:`gelab.eval.intervals`)."""
    actions = [fmt.parse_action(r.prediction) for r in records]
    correct = [step_correct(r, a) for r, a in zip(records, actions)]
    nav = [(r, ok) for r, ok in zip(records, correct) if r.kind == NAVIGATION]
    edge = [ok for r, ok in nav if r.step == 0]
    path = [ok for r, ok in nav if r.step != 0 and r.action == fmt.CLICK]
    tasks: dict[tuple[str | None, str | None, str | None], tuple[int, bool]] = {}
    for r, ok in nav:
        length, all_ok = tasks.get(r.task_key, (r.path_length, True))
        tasks[r.task_key] = (length, all_ok and ok)  # type: ignore[assignment]
    per_path: dict[str, StaticPath] = {}
    for length in sorted({r.path_length for r, _ in nav}):  # type: ignore[type-var]
        steps = [ok for r, ok in nav if r.path_length == length]
        done = [ok for n, ok in tasks.values() if n == length]
        per_path[str(length)] = StaticPath(tasks=len(done), steps=len(steps),
                                           **_rate("step_accuracy", steps), **_rate("task_success", done))
    icons: dict[str, Any] = {}
    for kind in ICON_KINDS:
        rows = [ok for r, ok in zip(records, correct) if r.kind == kind]
        if rows:
            icons.update(_rate(kind, rows), **{f"{kind}_samples": len(rows)})
    return to_json(Static(
        **_rate("edge", edge),
        **_rate("path", path),
        **_rate("overall", [ok for _, ok in nav]),
        **_rate("task_success", [ok for _, ok in tasks.values()]),
        steps=len(nav),
        tasks=len(tasks),
        unparseable=sum(isinstance(a, fmt.Invalid) for r, a in zip(records, actions) if r.kind == NAVIGATION),
        per_path=per_path,
        **icons,
    ))


def _rate(key: str, outcomes: Sequence[bool]) -> dict[str, Any]:
    """The fields ``key`` (percent right), ``key_ci95`` (Wilson interval) and ``key_n`` (outcomes
    counted) of a metrics Struct; rate and interval None for no outcomes."""
    right = sum(outcomes)
    return {key: percent(right, len(outcomes)), key + SUFFIX: interval(wilson(right, len(outcomes))),
            key + COUNT: len(outcomes)}


def score_file(predictions: str | Path, samples: str | Path | Sequence[dict[str, Any]] | None = None,
               samples_name: str = "samples") -> dict[str, Any]:
    """Load, check and score one prediction file: against the samples it answers (a static file, or
    its rows), which then give every ground truth; or, without samples, on its own checked rows."""
    from gelab.io import read_jsonl

    if isinstance(samples, (str, Path)):
        samples_name, samples = str(samples), read_jsonl(samples)
    if samples is not None:
        if not samples:
            raise PredictionFileError(f"{samples_name}: no samples")
        return static_metrics(join_samples(predictions, samples, samples_name))
    records = load_predictions(predictions)
    if not records:
        raise PredictionFileError(f"{predictions}: no rows")
    check_records(records)
    return static_metrics(records)
