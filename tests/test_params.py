"""Typed parameters: the repository's params.yaml loads; unknown keys and wrong types are errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from gelab.params import DataParams, EnvParams, ParamsError, VariantParams, load_section


def test_repository_params_load_with_defaults_of_the_paper() -> None:
    env = load_section(REPO / "params.yaml", "env", EnvParams)
    assert env == EnvParams()
    assert load_section(REPO / "params.yaml", "data", DataParams).test_subtree == "page_5"
    assert load_section(REPO / "params.yaml", "variants", VariantParams).noise_icons == 2


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("env:\n  seed: 1\n  brnaching: [1]\n")
    with pytest.raises(ParamsError, match=r"params.yaml: env\.brnaching: unknown key"):
        load_section(p, "env", EnvParams)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("env:\n  branching: [5, three]\n")
    with pytest.raises(ParamsError, match=r"env\.branching\[1\]: expected int"):
        load_section(p, "env", EnvParams)
