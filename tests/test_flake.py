"""flake.nix parses, pins nixpkgs by full commit, and agrees with requirements.lock.

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


def lock_python() -> str:
    first = (REPO / "requirements.lock").read_text().splitlines()[0]
    match = re.fullmatch(r"# python (\d+)\.(\d+)", first)
    assert match, f"requirements.lock: first line {first!r} is not '# python X.Y' (make lock writes it)"
    return f"{match[1]}.{match[2]}"


def lock_cuda_major() -> int:
    """The CUDA major of the torch wheels: the -cuNN suffixes and nvidia-cuda-runtime's version agree."""
    lock = (REPO / "requirements.lock").read_text()
    majors = {int(m) for m in re.findall(r"^nvidia-[\w-]+-cu(\d+)==", lock, re.M)}
    majors |= {int(m) for m in re.findall(r"^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.", lock, re.M)}
    assert len(majors) == 1, f"requirements.lock: no single CUDA major in the nvidia-* pins ({majors})"
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


def test_pins_agree_with_the_python_lock():
    pins = nix_eval("import ./nix/pins.nix")
    assert pins["python"] == "python" + lock_python().replace(".", "")
    assert pins["cudaPackages"] == f"cudaPackages_{lock_cuda_major()}"


def _shells() -> dict:
    expr = (f"let o = (import ./flake.nix).outputs {{ self = {{ }}; nixpkgs = {STUB}; }}; in "
            "builtins.mapAttrs (n: s: { packages = map (p: p.name) s.packages; inherit (s) shellHook; }) "
            "o.devShells.x86_64-linux")
    return nix_eval(expr)  # type: ignore[return-value]


def test_default_shell_has_the_pinned_toolchain_and_installs_the_lock():
    pins = nix_eval("import ./nix/pins.nix")
    shells = _shells()
    default = shells["default"]
    cuda = pins["cudaPackages"]
    for name in (pins["python"], f"{cuda}.cudatoolkit", f"{cuda}.nccl", "git", "noto-fonts-color-emoji"):
        assert name in default["packages"]
    assert not any(p.startswith("cudaPackages") for p in shells["cpu"]["packages"])
    for shell in shells.values():
        hook = shell["shellHook"]
        assert f"/stub/{pins['python']}/bin/python -m venv .venv" in hook
        assert "pip install -q -r requirements.lock" in hook
        assert "GELAB_EMOJI_FONT=/stub/noto-fonts-color-emoji/" in hook
        assert pins["emojiTest"]["hash"] in hook


def test_requirements_lock_pins_dvc_for_the_shell():
    """The shell's DVC is the lock's (installed into .venv on entry), not a second nixpkgs DVC."""
    assert re.search(r"^dvc==\d", (REPO / "requirements.lock").read_text(), re.M)
