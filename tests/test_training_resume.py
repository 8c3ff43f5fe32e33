"""When a training stage may resume: only with the same command line, rows and starting weights."""

from __future__ import annotations

from pathlib import Path

from gelab.training import fingerprint, folder_digest


def test_fingerprint_covers_command_rows_and_starting_weights(tmp_path: Path) -> None:
    init = tmp_path / "base"
    init.mkdir()
    (init / "config.json").write_text("{}")
    (init / "model.safetensors").write_bytes(bytes(range(256)))
    command = ["swift", "sft", "--model", str(init)]
    stamp = fingerprint(command, b"rows", folder_digest(init))
    assert stamp == fingerprint(command, b"rows", folder_digest(init))
    assert stamp != fingerprint(command, b"other rows", folder_digest(init))
    assert stamp != fingerprint([*command, "--max_steps", "2"], b"rows", folder_digest(init))
    (init / "model.safetensors").write_bytes(bytes(reversed(range(256))))  # same folder, other weights
    assert stamp != fingerprint(command, b"rows", folder_digest(init))
