"""Shared fixtures: one Env-Base, its variants and its datasets, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gelab.data.datasets import Source, build_all
from gelab.env.envdir import (
    Environment,
    RenderSettings,
    load_environment,
    write_environment,
)
from gelab.env.generate import generate
from gelab.env.variants import KINDS, make_variant
from gelab.params import DataParams, EnvParams

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    params = EnvParams()
    structure, art = generate(params)
    out = tmp_path_factory.mktemp("env") / "base"
    return write_environment(out, structure, art, RenderSettings(params.model_image_size), workers=2, progress=False)


@pytest.fixture(scope="session")
def variant_envs(base_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Environment]:
    root = tmp_path_factory.mktemp("variants")
    out = {}
    for kind in KINDS:
        structure, art = make_variant(kind, base_env.structure, base_env.art, 1, EnvParams())
        out[kind] = write_environment(root / kind, structure, art, base_env.settings, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def data_dir(base_env: Environment, variant_envs: dict[str, Environment],
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "data"
    variants = {k: Source.of(load_environment(e.root)) for k, e in variant_envs.items()}
    build_all(DataParams(), Source.of(base_env), variants, out, progress=False)
    return out
