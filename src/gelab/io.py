"""Atomic file and folder output: results appear whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from gelab.errors import InputError, quote


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def utf8_text(data: bytes, path: str | Path, error: type[InputError] = InputError) -> str:
    """``data`` decoded as UTF-8; bytes that are not raise ``error`` naming the file, line and byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def read_text(path: str | Path, error: type[InputError] = InputError) -> str:
    """A UTF-8 text file; an unreadable file or bytes that are not UTF-8 raise ``error`` naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    return utf8_text(data, path, error)


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    """Compact JSON Lines (key order kept, UTF-8), encoded with msgspec for speed."""
    import msgspec

    encode = msgspec.json.Encoder().encode
    return b"".join(encode(r) + b"\n" for r in rows)


def jsonl_lines(data: bytes, path: str | Path, error: type[InputError] = InputError) -> list[tuple[int, Any]]:
    """(line number, value) of each non-blank line of JSON Lines ``data``; a line that is not JSON raises
    ``error`` naming ``path`` and the line.

    Lines are decoded with msgspec (about 1.5× faster than the standard ``json`` module on the
    datasets); a line msgspec refuses is read again with ``json``, which decides: it also takes what
    msgspec does not (``NaN``, ``Infinity``, numbers beyond a float, lone surrogates, a BOM) and its
    message names what is wrong. Where msgspec succeeds, ``json`` gives the same value, so the rows
    are those of ``json.loads`` either way.
    """
    import msgspec

    decode = msgspec.json.Decoder().decode
    out = []
    for i, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = decode(line)
        except ValueError:  # msgspec.DecodeError (and ValidationError) included
            try:
                value = json.loads(line)
            except ValueError as exc:  # bad JSON, or bytes that are not UTF-8
                raise error(f"{path}: line {i}: not JSON ({getattr(exc, 'msg', exc)})") from None
        out.append((i, value))
    return out


def jsonl_rows(data: bytes, path: str | Path, error: type[InputError] = InputError) -> list[dict[str, Any]]:
    """The rows of JSON Lines ``data`` (blank lines skipped); a line that is not a JSON object raises
    ``error`` naming ``path`` and the line number."""
    rows = []
    for i, row in jsonl_lines(data, path, error):
        if not isinstance(row, dict):
            raise error(f"{path}: line {i}: expected a JSON object")
        rows.append(row)
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a bad line raises ``ValueError`` naming the file and line."""
    return jsonl_rows(Path(path).read_bytes(), path)


def _unique_key_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (YAML would keep the last)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {quote(key)}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml(path: str | Path, error: type[InputError] = InputError) -> Any:
    """Parsed YAML; an unreadable or invalid file, or a duplicate key, raises ``error`` naming the file."""
    import yaml

    text = read_text(path, error)
    try:
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on success it replaces ``path`` whole.

    On any error the temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(root: str | Path, files: Iterable[str | Path]) -> str:
    """SHA-256 over the names (relative to ``root``) and contents of ``files`` (paths under ``root``), in
    sorted order of name: which environment, which code or which model folder a result came from."""
    named = {Path(f).relative_to(root).as_posix(): Path(f) for f in files}
    h = hashlib.sha256()
    for name in sorted(named):
        h.update(name.encode() + b"\0" + bytes.fromhex(file_digest(named[name])) + b"\0")
    return h.hexdigest()


def tree_digest(root: str | Path, pattern: str = "*") -> str:
    """:func:`files_digest` of the files under ``root`` matching ``pattern``: a model folder (``*``) or a
    package's code (``*.py``)."""
    return files_digest(root, (p for p in Path(root).rglob(pattern) if p.is_file()))
