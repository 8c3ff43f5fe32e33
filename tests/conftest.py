"""Shared fixtures, built once per test session: one Env-Base, its variants and its datasets; the
embedded default's whole pipeline on a fresh copy of the repository."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
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
_spec = importlib.util.spec_from_file_location("paper_rehearsal", REPO / "scripts" / "paper_rehearsal.py")
rehearsal = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(rehearsal)  # type: ignore[union-attr]


def sh(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def dvc(cwd: Path, *args: str) -> str:
    return sh(cwd, sys.executable, "-m", "dvc", *args)


def fresh_copy(dest: Path, smoke: bool = False) -> Path:
    """This checkout's tracked and not-ignored files (committed results removed), as one git commit;
    with ``smoke``, its params.yaml at :data:`SMOKE` size."""
    rehearsal.copy_checkout(dest)
    if smoke:
        import yaml

        params = yaml.safe_load((dest / "params.yaml").read_text())
        (dest / "params.yaml").write_text("# params.yaml at the test suite's size (tests/conftest.py SMOKE)\n"
                                          + yaml.safe_dump(smoke_params(params), sort_keys=False))
    sh(dest, "git", "add", "-A")
    sh(dest, "git", "commit", "-q", "-m", "copy")
    return dest


# The in-suite pipeline: the embedded default with fewer steps and evaluation tasks (every stage, the
# same code and data; what the tests check does not depend on how well the model learns).
SMOKE = {
    "sft.max_steps": 60, "sft.save_steps": 30,
    "st_rl.max_steps": 2, "st_rl.save_steps": 2,
    "mt_rl.max_steps": 2, "mt_rl.save_steps": 2,
    "eval.static_limit_tasks": 7, "eval.interactive_limit_tasks": 7,
}


def smoke_params(params: dict) -> dict:
    """``params`` (params.yaml's content) with :data:`SMOKE`; a key the file lacks is an error."""
    import copy

    out = copy.deepcopy(params)
    for dotted, value in SMOKE.items():
        section, key = dotted.split(".")
        if key not in out[section]:
            raise KeyError(f"SMOKE: params.yaml has no {dotted}")
        out[section][key] = value
    return out


@pytest.fixture(scope="session")
def embedded_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of this checkout (committed results removed) after one full `dvc repro` of the
    embedded default at :data:`SMOKE` size. Used by tests/test_pipeline.py and, as the rehearsal's
    trained base and DVC cache, by tests/test_paper_rehearsal.py."""
    repo = fresh_copy(tmp_path_factory.mktemp("pipeline") / "repo", smoke=True)
    sh(repo, sys.executable, "-m", "gelab.cli", "env", "inputs", "--out", "data/emoji")  # data.dvc's inputs
    dvc(repo, "repro")
    return repo


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


class CliResult:
    """What one in-process ``gelab`` call returned and printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``run_cli("env", "export", ...)`` runs the ``gelab`` command in this process (``check=True``: exit 0).

    Most CLI tests use it; a few keep a real subprocess (hash seeds, SIGKILL, the console script).
    """
    from gelab.cli import main

    def run(*argv: object, check: bool = False) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        if check and code != 0:
            raise AssertionError(f"gelab {' '.join(map(str, argv))} exited {code}: {err}")
        return CliResult(code, out, err)

    return run


# --- a small rendered environment and real trajectory logs (viewer tests) ----------------------

SMALL_BRANCHING = [2, 2, 1]  # 11 pages; subtree page_1: 5 pages + page_0 -> 30 tasks
SMALL_VARIANTS = ("position", "noise")


@pytest.fixture(scope="session")
def small_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Environment, dict[str, Environment]]:
    """An 11-page environment, rendered, with two of its variants."""
    params = EnvParams(branching=SMALL_BRANCHING)
    structure, art = generate(params)
    root = tmp_path_factory.mktemp("small_env")
    base = write_environment(root / "base", structure, art, RenderSettings(params.model_image_size), progress=False)
    variants = {}
    for kind in SMALL_VARIANTS:
        vs, va = make_variant(kind, structure, art, 1, params)
        variants[kind] = write_environment(root / kind, vs, va, base.settings, progress=False)
    return base, variants


@pytest.fixture(scope="session")
def small_logs(small_env: tuple[Environment, dict[str, Environment]],
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Trajectory logs of the three reference policies on subtree page_1 (2 attempts per task), written
    by `gelab eval interactive`."""
    from gelab.cli import main

    base, _ = small_env
    root = tmp_path_factory.mktemp("small_logs")
    logs = {}
    for policy in ("random", "oracle", "home-then-complete"):
        logs[policy] = root / policy / "interactive" / "trajectories.jsonl"
        code = main(["eval", "interactive", "--policy", policy, "--env", str(base.root), "--subtree", "page_1",
                     "--attempts", "2", "--trajectories", str(logs[policy]),
                     "--out", str(root / policy / "interactive.json")])
        assert code == 0
    return logs
