"""Resume state of a stage's ``run/`` folder: complete checkpoints, the run's fingerprint (command
line, rows, starting weights and gelab's code: a changed one starts over), the record of a finished
run, and removing machine paths from the text files ms-swift writes (its ``args.json``,
``logging.jsonl``, ``trainer_state.json`` and ``completions.jsonl`` hold the clone's absolute path;
``training_args.bin`` is removed), so no DVC output carries one."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from gelab.io import atomic_write_bytes, tree_digest

PACKAGE = Path(__file__).resolve().parents[1]  # the gelab package: the code a stage runs with


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [d for d in run_dir.glob("checkpoint-*") if (d / "trainer_state.json").exists()]
    return sorted(found, key=lambda d: int(d.name.split("-")[1]))


def folder_digest(folder: str | Path) -> str:
    """The starting weights' digest: every file of the model folder (the 7B base takes about a minute)."""
    return tree_digest(folder)


def code_digest(package: Path = PACKAGE) -> str:
    """The gelab package's Python files: the reward plugin, the scheduler, the trainer and the template
    that ms-swift loads, and everything they import."""
    return tree_digest(package, "*.py")


def package_spelling(command: list[str], package: Path = PACKAGE) -> list[str]:
    """The command line with every path to a Python file of the gelab package (the plugins ms-swift
    loads, which the command names relative to the working folder) spelled from the package instead:
    ``gelab/train/swift_plugin.py``, whichever folder the stage runs in. The other arguments are kept."""
    return [_from_package(arg, package) for arg in command]


def _from_package(arg: str, package: Path) -> str:
    if not arg.endswith(".py"):
        return arg
    path = Path(arg).resolve()
    if not path.is_relative_to(package) or not path.is_file():
        return arg
    return (Path(package.name) / path.relative_to(package)).as_posix()


def fingerprint(command: list[str], rows: bytes, init_digest: str, code: str = "") -> str:
    """What a run is: its command line, its training rows, the weights it starts from and the gelab
    code ms-swift runs with it (:func:`code_digest`).

    A checkpoint is resumed, and a finished run reused, only under the same fingerprint, so a changed
    base model (or SFT checkpoint), or a changed plugin, scheduler or trainer, starts the stage over
    even when the command line names the same folders. The gelab files on the command line count by
    their place in the package (:func:`package_spelling`), not by the working folder's path to them:
    what they hold is in the code digest.
    """
    line = "\0".join(package_spelling(command))
    return hashlib.sha256((line + "\0" + init_digest + "\0" + code + "\0").encode() + rows).hexdigest()


FINISHED = "gelab_finished.json"  # written when ms-swift ends a run successfully
TEXT_SUFFIXES = (".json", ".jsonl", ".txt", ".csv", ".yaml", ".yml", ".sh", ".md", ".log")


def machine_roots(root: Path | None = None) -> list[str]:
    """The absolute spellings of the repository root (the stage's working folder), longest first."""
    base = Path.cwd() if root is None else Path(root)
    spellings = {str(base.absolute()), str(base.resolve()), os.path.realpath(base)}
    if root is None and os.environ.get("PWD") and Path(os.environ["PWD"]).resolve() == base.resolve():
        spellings.add(os.environ["PWD"])
    return sorted((s.rstrip("/") for s in spellings if s.rstrip("/")), key=len, reverse=True)


def strip_machine_paths(folder: Path, root: Path | None = None) -> list[Path]:
    """Rewrite every text file under ``folder`` so that no absolute path into the repository root remains
    (``ROOT/x`` -> ``x``, ``ROOT`` -> ``.``), and drop ms-swift's ``training_args.bin``; returns the files
    changed. Files are replaced atomically; ones that do not mention the root are left untouched."""
    changed: list[Path] = []
    roots = machine_roots(root)
    if not roots or not folder.exists():
        return changed
    spellings = dict.fromkeys([*roots, *(json.dumps(r)[1:-1] for r in roots)])  # as written, as JSON escapes it
    # ROOT/x -> x and a bare ROOT -> ., but never ROOT2/x (another folder that merely starts the same)
    pattern = re.compile(b"(?:" + b"|".join(re.escape(r.encode()) for r in spellings) + rb")(/|(?![\w.-]))")
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if path.name == "training_args.bin":
            path.unlink()
            changed.append(path)
            continue
        if path.suffix not in TEXT_SUFFIXES:
            continue
        data = path.read_bytes()
        new = pattern.sub(lambda m: b"" if m.group(1) else b".", data)
        if new != data:
            atomic_write_bytes(path, new)
            changed.append(path)
    return changed


def finished_run(run_dir: Path, stamp: str, done: list[Path]) -> dict[str, Any] | None:
    """The record of this run's successful end, if its last checkpoint is still the newest one."""
    path = run_dir / FINISHED
    if not path.exists() or not done:
        return None
    record = json.loads(path.read_text())
    if record.get("fingerprint") != stamp or record.get("checkpoint") != done[-1].name:
        return None
    return record
