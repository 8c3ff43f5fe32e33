"""Shared builders for the training tests: one Env-Base and small datasets per test session.

Kept out of ``conftest.py`` on purpose (the project's conftest owns the general fixtures); the
training tests import these fixtures by name. Results are cached under pytest's base temp folder so
every module that imports them reuses one build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gelab.envdir import Environment, RenderSettings, load_environment, write_environment
from gelab.generate import generate
from gelab.params import DataParams, EnvParams


def _base_env(root: Path) -> Environment:
    out = root / "train_env" / "base"
    if not out.exists():
        params = EnvParams()
        structure, art = generate(params)
        write_environment(out, structure, art, RenderSettings(params.model_image_size), workers=2, progress=False)
    return load_environment(out)


@pytest.fixture(scope="module")
def train_env(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    """Env-Base rendered once per session (about 20 s on two cores)."""
    return _base_env(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The datasets of ``gelab data build`` for Env-Base (no OOD variants), built once per session."""
    from gelab.datasets import Source, build_all

    root = tmp_path_factory.getbasetemp()
    out = root / "train_data" / "data"
    if not out.exists():
        env = _base_env(root)
        params = DataParams(ood_variants=[])
        build_all(params, Source.of(env), {}, out, progress=False)
    return out
