"""The ``eval`` section of params.yaml loads into :class:`EvalParams`; bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gelab.params import EvalParams, ModelParams, ParamsError, load_section

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_load() -> None:
    p = load_section(ROOT / "params.yaml", "eval", EvalParams)
    assert p.attempts == 5 and p.max_steps == 12
    assert load_section(ROOT / "params.yaml", "model", ModelParams).max_pixels == 224 * 224  # paper profile: 448²
    assert set(p.reference_policies) <= {"oracle", "random", "home-then-complete"}
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in p.checkpoints.items())


@pytest.mark.parametrize("text,where", [
    ("eval:\n  atempts: 5\n", "eval.atempts: unknown key"),  # typo
    ("eval:\n  checkpoints: [a, b]\n", "eval.checkpoints: expected a mapping"),  # a list, not name -> folder
    ("eval:\n  checkpoints: {sft: 3}\n", "eval.checkpoints.sft: expected str"),  # folder must be a path
    ("eval:\n  temperature: hot\n", "eval.temperature: expected float"),
])
def test_bad_eval_params_are_named(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=where):
        load_section(path, "eval", EvalParams)
