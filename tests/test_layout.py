"""The package layout follows the data flow, and every DVC stage depends on all the code it runs.

- Imports point one way, down the pipeline: core (format, io, params, seeding) -> env -> tasks -> data
  -> train -> eval -> checks -> report -> cli. A module never imports from a later layer. ``checks``
  (the learning checks) trains and then evaluates, so it sits after both; no pipeline stage runs it.
- For every stage of ``dvc.yaml``, each ``gelab`` module its command can import (the CLI module of
  the command, everything it imports, lazily or not, and the ms-swift plugins the training commands
  load by path) lies inside one of the stage's ``deps``; otherwise editing that module would not
  re-run the stage and its outputs would silently describe old code.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "gelab"
LAYERS = {"core": 0, "env": 1, "tasks": 2, "data": 3, "train": 4, "eval": 5, "checks": 6, "report": 7, "cli": 8}
# Modules that a command loads by path, not by import
# (ms-swift's --external_plugins and --custom_register_path).
_PLUGINS = ["src/gelab/train/swift_plugin.py", "src/gelab/train/swift_cpu_ranks.py", "src/gelab/train/swift_template.py"]
LOADED_BY_PATH = {"train sft": _PLUGINS[1:], "train st-rl": _PLUGINS, "train mt-rl": _PLUGINS}


def module_file(name: str) -> Path | None:
    """``gelab.a.b`` -> its file (a module or a package's ``__init__``), None if not gelab's own."""
    parts = name.split(".")
    if parts[0] != "gelab":
        return None
    base = SRC.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports, at top level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # submodules
    return names


def parents_of(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def closure(path: Path) -> frozenset[Path]:
    """The gelab files reachable from ``path`` by imports (packages' ``__init__`` included)."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in imported_modules(f):
            for n in (*parents_of(name), name):
                target = module_file(n)
                if target is not None and target not in seen:
                    todo.append(target)
    return frozenset(seen)


def layer(path: Path) -> int:
    rel = path.relative_to(PKG)
    return LAYERS[rel.parts[0]] if len(rel.parts) > 1 else LAYERS["core"]


def test_imports_point_down_the_pipeline():
    wrong = []
    for f in sorted(PKG.rglob("*.py")):
        for name in imported_modules(f):
            target = module_file(name)
            if target is not None and layer(target) > layer(f):
                wrong.append(f"{f.relative_to(SRC)} imports {name}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_flat_modules_beyond_the_core():
    flat = sorted(p.name for p in PKG.glob("*.py"))
    assert flat == ["__init__.py", "errors.py", "format.py", "interrupts.py", "io.py", "params.py", "seeding.py"]


def stage_commands() -> dict[str, tuple[list[str], list[str]]]:
    """stage name -> (commands, deps), from dvc.yaml (a foreach stage's template stands for its items)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = {}
    for name, stage in raw.items():
        body = stage.get("do", stage)
        cmds = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        out[name] = ([" ".join(c.split()) for c in cmds], [str(d) for d in body.get("deps", [])])
    return out


def code_of(command: str) -> set[Path]:
    """Every gelab file a ``gelab <group> ...`` command can import."""
    m = re.match(r"gelab (\w+) ([\w-]+)", command)
    assert m, f"not a gelab command: {command}"
    roots = [PKG / "cli" / "__init__.py", PKG / "cli" / f"{m[1]}.py"]
    roots += [ROOT / p for p in LOADED_BY_PATH.get(f"{m[1]} {m[2]}", [])]
    files: set[Path] = set()
    for r in roots:
        assert r.is_file(), f"{command}: {r} does not exist"
        files |= closure(r)
    return files


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    dep_paths = [(ROOT / d).resolve() for d in deps if not d.startswith("$")]
    return sorted(str(f.relative_to(ROOT)) for f in files
                  if not any(f == d or d in f.parents for d in dep_paths))


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_stage_deps_cover_the_code_it_runs(stage):
    commands, deps = stage_commands()[stage]
    files = set().union(*(code_of(c) for c in commands))
    assert not uncovered(files, deps), f"{stage}: deps miss {uncovered(files, deps)}"


def test_the_cover_check_sees_a_missing_module():
    """The check itself: a stage that leaves out a module its command imports is caught."""
    files = code_of("gelab data build --out x")
    assert PKG / "seeding.py" in files  # click points are seeded by the data module
    deps = ["src/gelab/env", "src/gelab/tasks", "src/gelab/data", "src/gelab/cli", "src/gelab/format.py", "src/gelab/errors.py",
            "src/gelab/interrupts.py", "src/gelab/io.py", "src/gelab/params.py", "src/gelab/__init__.py"]
    assert uncovered(files, deps) == ["src/gelab/seeding.py"]
