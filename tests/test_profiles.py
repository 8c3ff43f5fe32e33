"""Both profiles (params.yaml, profiles/paper.yaml) are complete: every section loads into its
dataclass, and every ``${...}`` that dvc.yaml interpolates resolves in each (a paper-profile
``cp profiles/paper.yaml params.yaml && dvc repro`` must not fail on a missing key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gelab.io import read_yaml
from gelab.params import EvalParams, ModelParams, ParamsError, load_section

REPO = Path(__file__).resolve().parents[1]
PROFILES = [REPO / "params.yaml", REPO / "profiles" / "paper.yaml"]


def _lookup(tree: dict, dotted: str) -> object:
    node: object = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def test_profiles_have_the_same_sections() -> None:
    default, paper = (read_yaml(p) for p in PROFILES)
    assert sorted(default) == sorted(paper)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_dvc_interpolation_resolves(profile: Path) -> None:
    params = read_yaml(profile)
    references = set(re.findall(r"\$\{\s*([\w.]+)\s*\}", (REPO / "dvc.yaml").read_text()))
    references = {r for r in references if r.split(".")[0] not in ("item", "key")}  # foreach loop variables
    assert references, "dvc.yaml interpolates nothing? the pattern is stale"
    missing = []
    for ref in sorted(references):
        try:
            _lookup(params, ref)
        except KeyError:
            missing.append(ref)
    assert missing == [], f"{profile.name} lacks {missing}"


def test_paper_profile_evaluates_the_full_sets() -> None:
    p = load_section(PROFILES[1], "eval", EvalParams)
    assert (p.static_limit_tasks, p.interactive_limit_tasks) == (0, 0)
    assert (p.attempts, p.max_steps, load_section(PROFILES[1], "model", ModelParams).max_pixels) == (5, 12, 200704)
    assert p.backend == "vllm" and set(p.checkpoints) == {"sft", "st_rl", "mt_rl"}


@pytest.mark.parametrize("field,value", [
    ("attempts", 0), ("max_steps", 0), ("batch_size", -1), ("max_new_tokens", 0), ("temperature", -0.5),
    ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1), ("static_limit_tasks", -2), ("interactive_limit_tasks", -1),
    ("backend", "tgi"), ("repetition_penalty", 0),
])
def test_out_of_range_eval_params_name_the_field(tmp_path: Path, field: str, value: object) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"eval:\n  {field}: {value}\n")
    with pytest.raises(ParamsError, match=rf"params.yaml: eval\.{field}: "):
        load_section(path, "eval", EvalParams)
