"""flake.nix parses, pins nixpkgs by full commit, and agrees with the locks it installs.

The default shell (paper profile, GPU) installs requirements-gpu.lock, ``.#cpu`` (embedded default)
installs requirements.lock; both locks are for the flake's Python and CUDA major.

Needs ``nix-instantiate`` (Debian package nix-bin; .ci/run installs it). The flake's outputs are
evaluated against tests/nix/stub-nixpkgs, so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = REPO / "tests" / "nix" / "stub-nixpkgs"

pytestmark = pytest.mark.skipif(shutil.which("nix-instantiate") is None,
                                reason="nix-instantiate not installed (apt-get install nix-bin; .ci/run does)")


def nix_eval(expr: str) -> object:
    proc = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


LOCKS = ("requirements.lock", "requirements-gpu.lock")


def lock_python(name: str) -> str:
    first = (REPO / name).read_text().splitlines()[0]
    match = re.fullmatch(r"# python (\d+)\.(\d+)", first)
    assert match, f"{name}: first line {first!r} is not '# python X.Y' (make lock / make lock-gpu writes it)"
    return f"{match[1]}.{match[2]}"


def lock_cuda_major(name: str) -> int:
    """The CUDA major of the torch wheels: the -cuNN suffixes, nvidia-cuda-runtime and cuda-toolkit agree."""
    lock = (REPO / name).read_text()
    majors = {int(m) for m in re.findall(r"^nvidia-[\w-]+-cu(\d+)==", lock, re.M)}
    majors |= {int(m) for m in re.findall(r"^(?:nvidia-cuda-runtime(?:-cu\d+)?|cuda-toolkit)==(\d+)\.", lock, re.M)}
    assert len(majors) == 1, f"{name}: no single CUDA major in the nvidia-* pins ({majors})"
    return majors.pop()


@pytest.mark.parametrize("path", ["flake.nix", "nix/pins.nix"])
def test_nix_files_parse(path):
    proc = subprocess.run(["nix-instantiate", "--parse", path], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_nixpkgs_is_pinned_to_a_full_commit():
    url = nix_eval("(import ./flake.nix).inputs.nixpkgs.url")
    match = re.fullmatch(r"github:NixOS/nixpkgs/([0-9a-f]{40})", str(url))
    assert match, f"flake.nix: nixpkgs input {url!r} is not pinned to a 40-hex commit"
    lock = REPO / "flake.lock"
    if lock.exists():  # written by the first `nix develop`; must lock the same commit
        assert json.loads(lock.read_text())["nodes"]["nixpkgs"]["locked"]["rev"] == match[1]


@pytest.mark.parametrize("lock", LOCKS)
def test_pins_agree_with_the_python_locks(lock):
    pins = nix_eval("import ./nix/pins.nix")
    assert pins["python"] == "python" + lock_python(lock).replace(".", "")
    assert pins["cudaPackages"] == f"cudaPackages_{lock_cuda_major(lock)}"


def _shells() -> dict:
    expr = (f"let o = (import ./flake.nix).outputs {{ self = {{ }}; nixpkgs = {STUB}; }}; in "
            "builtins.mapAttrs (n: s: { packages = map (p: p.name) s.packages; inherit (s) shellHook; }) "
            "o.devShells.x86_64-linux")
    return nix_eval(expr)  # type: ignore[return-value]


def test_default_shell_has_the_pinned_toolchain_and_installs_the_gpu_lock():
    pins = nix_eval("import ./nix/pins.nix")
    shells = _shells()
    default = shells["default"]
    cuda = pins["cudaPackages"]
    for name in (pins["python"], f"{cuda}.cudatoolkit", f"{cuda}.nccl", "git", "noto-fonts-color-emoji"):
        assert name in default["packages"]
    assert not any(p.startswith("cudaPackages") for p in shells["cpu"]["packages"])
    for shell, lock in (("default", "requirements-gpu.lock"), ("cpu", "requirements.lock")):
        hook = shells[shell]["shellHook"]
        assert f"/stub/{pins['python']}/bin/python -m venv .venv" in hook
        assert f"pip install -q -r {lock}\n" in hook and f"cat {lock} pyproject.toml" in hook
        assert "GELAB_EMOJI_FONT=/stub/noto-fonts-color-emoji/" in hook
        assert pins["emojiTest"]["hash"] in hook
    assert "make flash-attn" in default["shellHook"] and "flash" not in shells["cpu"]["shellHook"]


def test_requirements_lock_pins_dvc_for_the_shell():
    """The shell's DVC is the lock's (installed into .venv on entry), not a second nixpkgs DVC."""
    assert re.search(r"^dvc==\d", (REPO / "requirements.lock").read_text(), re.M)
