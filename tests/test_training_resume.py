"""When a training stage may resume: only with the same command line, rows and starting weights."""

from __future__ import annotations

from pathlib import Path

from gelab.train.training import fingerprint, folder_digest


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


def test_other_nodes_never_discard_a_run(tmp_path: Path, monkeypatch) -> None:
    """A node with NODE_RANK > 0 refuses a stale run folder instead of deleting node 0's work."""
    import json

    import msgspec
    import pytest

    from gelab.train.training import TrainError, TrainParams, run_stage

    init = tmp_path / "base"
    init.mkdir()
    (init / "config.json").write_text("{}")
    rows = tmp_path / "sft.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    tp = TrainParams.load(Path(__file__).resolve().parents[1] / "params.yaml")
    tp = msgspec.structs.replace(tp, sft=msgspec.structs.replace(tp.sft, dataset=str(rows)))
    out = tmp_path / "sft"
    (out / "run" / "checkpoint-2").mkdir(parents=True)
    (out / "run" / "gelab_fingerprint").write_text("another run\n")
    monkeypatch.setenv("NODE_RANK", "1")
    with pytest.raises(TrainError, match="NODE_RANK=0"):
        run_stage(tp, "sft", str(init), out, tmp_path / "metrics")
    assert (out / "run" / "checkpoint-2").is_dir()
