"""Append-only JSONL logs for predictions and trajectories.

Rows are appended as they are produced and flushed after every batch, so a run killed at any point
leaves every finished row on disk and at most one partially written last line. Opening a log for
appending reads the rows that are there and cuts such a broken tail off, so a restarted run
continues without duplicated or missing rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import msgspec

from gelab.errors import InputError, quote
from gelab.io import jsonl_rows

_encoder = msgspec.json.Encoder()


def encode_line(row: dict[str, Any]) -> bytes:
    return _encoder.encode(row) + b"\n"


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of a log and the byte length of its complete part.

    A last line that is not terminated by a newline (a write cut short) is ignored; any other line
    that is not a JSON object raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # bytes after the last newline are an unfinished write
    return jsonl_rows(data[:end], path), end


class AppendLog:
    """A JSONL file opened for appending after its complete rows (see the module docstring)."""

    def __init__(self, path: str | Path, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume:
            self.rows, end = read_log(self.path)
        else:
            self.rows, end = [], 0
        self._file = open(self.path, "ab" if resume else "wb")
        if resume and self._file.tell() != end:
            self._file.truncate(end)  # drop a partially written last line
            self._file.seek(end)

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows and push them to disk (one flush per call)."""
        self._file.write(b"".join(encode_line(r) for r in rows))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def claim_log(path: str | Path, identity: dict[str, Any], *, fresh: bool = False, restart: bool = False) -> None:
    """Tie a log to the run that writes it, through ``PATH.run.json`` beside it.

    A restarted run may continue a log only if it is the same run (same policy, model, data and
    settings); otherwise this raises ``ValueError`` naming the first differing setting, or, with
    ``restart`` (what the DVC stages use: their outputs persist so that an interrupted stage
    continues), starts the log over. ``fresh`` removes the log and starts over in any case.
    """
    import json
    import sys

    from gelab.io import atomic_write_json

    path = Path(path)
    meta = path.with_name(path.name + ".run.json")
    if fresh:
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
    identity = json.loads(json.dumps(identity))  # as it reads back from JSON
    if path.exists() and path.stat().st_size > 0:
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            old = None
            reason = f"{meta.name} is missing or broken; cannot tell which run wrote it"
        else:
            key = next((k for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)), None)
            reason = "" if key is None else \
                f"written by another run ({key}: {quote(old.get(key))} there, {quote(identity.get(key))} now)"
        if reason and not restart:
            raise InputError(f"{path}: {reason}; pass --fresh to start over")
        if reason:
            print(f"{path}: {reason}: starting it over", file=sys.stderr)
            path.unlink()
    atomic_write_json(meta, identity)


def folder_signature(folder: str | Path) -> str:
    """SHA-256 over the names, sizes and modification times of a folder's files: cheap for a 15 GB model,
    and it changes whenever training writes the folder again (a copy with new times only restarts a log)."""
    import hashlib

    root = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def code_digest() -> str:
    """SHA-256 of the gelab code that decides what a policy is shown and how its answers play out
    (prompts and parsing, environments, episodes, policies and backends; not the static scorer)."""
    from gelab.io import files_digest

    root = Path(__file__).resolve().parents[1]
    files = [root / "format.py", *(f for part in ("env", "tasks", "eval") for f in (root / part).rglob("*.py"))]
    scorer = root / "eval" / "static.py"  # scoring only: no row depends on it
    return files_digest(root, (f for f in files if f != scorer))
