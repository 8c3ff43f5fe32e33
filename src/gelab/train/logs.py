"""ms-swift's ``logging.jsonl`` as metrics: one row per logged step from the attempt that survived
(:func:`timeline`: a resumed run logs the steps after its checkpoint a second time), the step CSV, and
the stage summary (first/final loss and rewards, wall time and throughput over every attempt)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from gelab.io import read_jsonl
from gelab.train.launch import read_attempts


def _num(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """ms-swift's ``logging.jsonl`` with numbers as numbers."""
    path = run_dir / "logging.jsonl"
    return [{k: _num(v) for k, v in row.items()} for row in read_jsonl(path)] if path.exists() else []


STEP_COLUMNS = ("step", "loss", "learning_rate", "grad_norm", "train_speed(s/it)", "reward", "reward_std",
                "frac_reward_zero_std", "token_acc", "kl", "completions/mean_length")
TURN_COLUMNS = ("num_turns", "episodes", "turns", "samples")  # MT-RL per step: mean turns, then counts


def step_rows(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-step metrics for plots: loss, lr, throughput and every reward term ms-swift logged."""
    rows = []
    for entry in log:
        step = _step(entry)
        if step is None:
            continue
        row: dict[str, Any] = {"step": step}
        for key, value in entry.items():
            if key in STEP_COLUMNS or key.startswith("rewards/") and key.endswith("/mean") or key in TURN_COLUMNS:
                if isinstance(value, (int, float)):
                    row[key] = value
        rows.append(row)
    return rows


def _global_step(entry: dict[str, Any]) -> int | None:
    """The optimizer step of a ``logging.jsonl`` entry (``"global_step/max_steps": "N/M"``), if it has one."""
    done = str(entry.get("global_step/max_steps", "")).split("/")[0]
    return int(done) if done.isdigit() else None


def _step(entry: dict[str, Any]) -> int | None:
    """The step of a per-step entry (not the final ``train_runtime`` entry)."""
    return None if "train_runtime" in entry else _global_step(entry)


def _seconds(text: Any) -> float | None:
    """ms-swift's ``elapsed_time`` (``"1h 2m 3s"``, ``"59s"``, ``"1d 2h 3m 4s"``) in seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    if not isinstance(text, str):
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    total = 0.0
    for part in text.split():
        try:
            total += float(part[:-1]) * units[part[-1]]
        except (KeyError, ValueError, IndexError):
            return None
    return total


def attempts_of(log: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``logging.jsonl`` cut into the ms-swift runs that appended to it: a new run starts after a final
    entry (``train_runtime`` or the end-of-run record) or where the step count goes back."""
    runs: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    last = -1
    for entry in log:
        step = _step(entry)
        if step is not None and step <= last and current:
            runs.append(current)
            current = []
        current.append(entry)
        if step is not None:
            last = step
        if "train_runtime" in entry or "last_model_checkpoint" in entry:
            last = -1
            if "last_model_checkpoint" in entry:
                runs.append(current)
                current = []
    if current:
        runs.append(current)
    return [r for r in runs if r]


def timeline(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step entries of the run that produced the final weights: when a resumed attempt logs a step
    again, the earlier attempt's entries from that step on are dropped (they belonged to a run that
    was rolled back to its last checkpoint), so each step appears once."""
    kept: list[dict[str, Any]] = []
    for entry in log:
        step = _step(entry)
        if step is None:
            continue
        while kept and _step(kept[-1]) >= step:  # type: ignore[operator]
            kept.pop()
        kept.append(entry)
    return kept


def train_time(log: list[dict[str, Any]]) -> float:
    """Seconds ms-swift spent training, summed over every attempt: an attempt's ``train_runtime`` when it
    ended, else the last ``elapsed_time`` it logged (a killed attempt)."""
    total = 0.0
    for run in attempts_of(log):
        final = [e["train_runtime"] for e in run if isinstance(e.get("train_runtime"), (int, float))]
        if final:
            total += final[-1]
        else:
            elapsed = [t for e in run if _step(e) is not None and (t := _seconds(e.get("elapsed_time"))) is not None]
            total += elapsed[-1] if elapsed else 0.0
    return total


def steps_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def summarize(stage: str, rows: list[dict[str, Any]], log: list[dict[str, Any]], wall_s: float,
              n_rows: int) -> dict[str, Any]:
    """The small summary reports read: first/final loss, reward terms, steps, wall time."""
    losses = [r["loss"] for r in rows if "loss" in r]
    summary: dict[str, Any] = {"stage": stage, "steps": rows[-1]["step"] if rows else 0, "train_rows": n_rows,
                               "wall_time_s": round(wall_s, 1)}
    if losses:
        summary.update(first_loss=losses[0], final_loss=losses[-1],
                       loss_ratio=losses[-1] / losses[0] if losses[0] > 0 else None)  # RL losses start near 0
    tail = rows[-max(1, len(rows) // 4):]  # the last quarter of the run
    for key in sorted({k for r in rows for k in r if k.startswith("rewards/") or k in ("reward", *TURN_COLUMNS)}):
        first = [r[key] for r in rows if key in r]
        last = [r[key] for r in tail if key in r]
        if first and last:
            summary[key.replace("/mean", "")] = {"first": first[0], "final_mean": sum(last) / len(last)}
    final = [e for e in log if "train_runtime" in e]
    if final:
        done = _global_step(final[-1])
        if done is not None:  # the steps trained, also when the last ones fell between logging_steps
            summary["steps"] = max(summary["steps"], done)
        summary["train_runtime_s"] = final[-1]["train_runtime"]
        summary["train_samples_per_second"] = final[-1].get("train_samples_per_second")
    return summary


def resumed_totals(log: list[dict[str, Any]], run_dir: Path, steps: list[dict[str, Any]],
                   samples_per_step: int) -> dict[str, Any]:
    """Summary fields that cover every attempt of a run: attempts, training time and throughput
    (samples of the final run's steps per second of training, replayed steps' time included)."""
    runtime = train_time(log)
    out: dict[str, Any] = {"attempts": max(1, len(read_attempts(run_dir))), "train_runtime_s": round(runtime, 4)}
    if steps and runtime > 0:
        out["train_samples_per_second"] = round(steps[-1]["step"] * samples_per_step / runtime, 3)
    return out
