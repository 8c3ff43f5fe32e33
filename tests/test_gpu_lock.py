"""The paper profile's GPU lock resolves for its platform, and its pins agree with each other.

- The committed pins: the GPU stack ms-swift 4.6 was tested with (torch 2.11.0, torchvision 0.26.0,
  vLLM 0.23.0, flash-attn 2.8.3 built against that torch), one CUDA major, a hash for every pin.
- The checker itself, on a made-up registry: a pin without a usable wheel is named, a source-only
  pin is built, a version conflict is a failure (never excused by a missing wheel).
- The real thing (slow, needs the registry): pip's resolver, in dry-run mode for Linux x86-64 /
  CPython 3.11, accepts the whole lock; a pin the registry lacks is reported by name (the test is
  skipped with that list), a conflict fails the test.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_lock", REPO / "scripts" / "gpu_lock.py")
gpu_lock = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["gpu_lock"] = gpu_lock
_spec.loader.exec_module(gpu_lock)  # type: ignore[union-attr]

Pin = gpu_lock.Pin


def lock_pins() -> dict:
    return gpu_lock.read_pins((REPO / "requirements-gpu.lock").read_text())


def version(pins: dict, name: str) -> str:
    return pins[gpu_lock.canonicalize_name(name)].version


# --- the committed pins -------------------------------------------------------------------------


def test_gpu_stack_is_the_one_ms_swift_4_6_was_tested_with() -> None:
    pins = lock_pins()
    assert version(pins, "ms-swift").startswith("4.6.")
    assert (version(pins, "torch"), version(pins, "torchvision"), version(pins, "torchaudio")) == (
        "2.11.0", "0.26.0", "2.11.0")
    assert version(pins, "vllm") == "0.23.0"  # pins torch==2.11.0 itself
    assert version(pins, "transformers") == "5.12.1" and version(pins, "deepspeed") == "0.18.9"
    assert "xformers" not in pins  # vLLM 0.23 does not use it; nothing else asks for it
    flash = gpu_lock.flash_attn_pin()
    assert flash is not None and flash.version == "2.8.3" and len(flash.hashes) == 1
    for name in gpu_lock.FLASH_ATTN_BUILD:  # --no-build-isolation: the build imports these from the lock
        assert gpu_lock.canonicalize_name(name) in pins, name


def test_every_pin_is_hashed_and_the_cuda_wheels_share_one_major() -> None:
    text = (REPO / "requirements-gpu.lock").read_text()
    assert text.splitlines()[0] == "# python 3.11"  # the flake's Python pin is checked against it
    pins = lock_pins()
    assert len(pins) > 250 and all(p.hashes for p in pins.values())
    majors = {m for m in re.findall(r"^nvidia-[\w-]+-cu(\d+)==", text, re.M)}
    majors.add(version(pins, "cuda-toolkit").split(".")[0])
    assert majors == {"13"}
    pins_nix = (REPO / "nix" / "pins.nix").read_text()
    assert 'cudaPackages = "cudaPackages_13"' in pins_nix  # nvcc that builds flash-attn: same major


def test_the_cpu_lock_has_no_gpu_only_package() -> None:
    cpu = gpu_lock.read_pins((REPO / "requirements.lock").read_text())
    assert "vllm" not in cpu and "flash-attn" not in cpu  # the embedded default installs neither
    assert version(cpu, "ms-swift").split(".")[:2] == version(lock_pins(), "ms-swift").split(".")[:2]


# --- the checker on a made-up registry ----------------------------------------------------------


def _file(name: str, sha: str = "0" * 64) -> dict:
    return {"filename": name, "url": f"https://files.example/{name}", "hashes": {"sha256": sha}}


REGISTRY = {
    "torch": [_file("torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl", "a" * 64),
              _file("torch-2.11.0-cp311-cp311-win_amd64.whl", "b" * 64),
              _file("torch-2.10.0-cp311-cp311-manylinux_2_28_x86_64.whl", "c" * 64)],
    # the large CUDA wheel is listed for other machines only: this registry lacks it for the target
    "nvidia-cudnn-cu13": [_file("nvidia_cudnn_cu13-9.19.0.56-py3-none-manylinux_2_27_aarch64.whl")],
    "oss2": [_file("oss2-2.19.1.tar.gz", "d" * 64)],
    "llguidance": [_file("llguidance-1.7.6-cp39-abi3-manylinux_2_31_x86_64.whl", "e" * 64),
                   _file("llguidance-1.7.6-cp39-abi3-manylinux_2_39_x86_64.whl", "f" * 64)],
}


def test_probe_names_the_pins_the_registry_has_no_usable_file_for() -> None:
    pins = [Pin("torch", "2.11.0"), Pin("nvidia-cudnn-cu13", "9.19.0.56"), Pin("oss2", "2.19.1"),
            Pin("llguidance", "1.7.6"), Pin("not-published", "1.0")]
    found = gpu_lock.probe(pins, lambda name: REGISTRY.get(name, []))
    assert sorted(found.wheels) == ["llguidance", "torch"]
    assert sorted(found.sdists) == ["oss2"]  # built into a wheel on this machine
    assert sorted(found.missing) == ["not-published", "nvidia-cudnn-cu13"]
    assert found.missing["nvidia-cudnn-cu13"].startswith("nvidia-cudnn-cu13==9.19.0.56: no wheel for CPython 3.11")
    assert found.hashes["torch"] == ["a" * 64]  # only the Linux x86-64 file of that version
    # a newer glibc's wheel is hashed too (pip on such a machine prefers it), though the target cannot use it
    assert found.hashes["llguidance"] == ["e" * 64, "f" * 64]


def test_an_unreachable_registry_is_reported_not_hidden() -> None:
    def down(name: str) -> list[dict]:
        raise OSError("connection refused")

    found = gpu_lock.probe([Pin("torch", "2.11.0")], down)
    assert found.missing == {"torch": "torch==2.11.0: registry unreachable (connection refused)"}


def _item(name: str, ver: str, *requires: str) -> dict:
    return {"metadata": {"name": name, "version": ver, "requires_dist": list(requires)}}


def test_consistency_finds_pins_that_disagree() -> None:
    pins = {p.key: p for p in [Pin("ms-swift", "4.5.3"), Pin("vllm", "0.23.0"), Pin("torch", "2.10.0"),
                               Pin("torchvision", "0.26.0"), Pin("nvidia-nccl-cu13", "2.28.9"),
                               Pin("nvidia-cudnn-cu12", "9.1.0")]}
    installs = {
        "vllm": _item("vllm", "0.23.0", "torch==2.11.0", "torchvision==0.26.0", "xformers==0.0.33; extra == 'x'"),
        "torchvision": _item("torchvision", "0.26.0", "torch==2.11.0"),
        "torch": _item("torch", "2.10.0"), "ms-swift": _item("ms-swift", "4.5.3"),
        "blake3": _item("blake3", "1.0.11"),
    }
    problems = gpu_lock.consistency(pins, installs, Pin("flash-attn", "2.8.3"))
    text = "\n".join(problems)
    assert "ms-swift must be 4.6.x" in text
    assert "vllm==0.23.0 needs torch==2.11.0, the lock has torch==2.10.0" in text
    assert "torchvision==0.26.0 needs torch==2.11.0" in text
    assert "xformers" not in text  # an extra nobody asked for
    assert "blake3==1.0.11 is needed but not in the lock" in text
    assert "mix CUDA majors [12, 13]" in text
    assert "ninja must be in the lock" in text


def test_a_stand_in_wheel_carries_name_and_version_only(tmp_path: Path) -> None:
    import zipfile

    path = gpu_lock.stub_wheel(Pin("nvidia-cudnn-cu13", "9.19.0.56"), tmp_path)
    assert path.name == "nvidia_cudnn_cu13-9.19.0.56-py3-none-any.whl"
    with zipfile.ZipFile(path) as z:
        meta = z.read("nvidia_cudnn_cu13-9.19.0.56.dist-info/METADATA").decode()
    assert "Name: nvidia-cudnn-cu13\nVersion: 9.19.0.56\n" in meta and "Requires-Dist" not in meta


# --- the real registry --------------------------------------------------------------------------


@pytest.mark.slow
def test_gpu_lock_resolves_for_linux_x86_64_python_3_11() -> None:
    """pip's resolver accepts the whole lock for the target, without installing it (a few minutes)."""
    try:
        gpu_lock.index_files("pip")
    except OSError as exc:
        pytest.skip(f"the package registry is unreachable ({exc}): nothing could be checked")
    result = gpu_lock.check()
    assert not result.problems, "the GPU lock does not hold together:\n" + "\n".join(result.problems)
    assert result.resolved == len(lock_pins())
    if result.missing:  # only unreachable files may excuse the test, never a conflict (asserted above)
        pytest.skip("the registry lacks (the rest of the lock resolves around them): " + "; ".join(result.missing))
