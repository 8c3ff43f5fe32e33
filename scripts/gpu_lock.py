"""The paper profile's GPU lock: write it and check it, with no GPU and without installing anything.

    requirements-gpu.in              top-level pins (the versions ms-swift 4.6 was tested with)
    requirements-gpu.lock            every package of the GPU environment, pinned, with the sha256 of
                                     every Linux x86-64 / CPython 3.11 file of that version
    requirements-gpu-flash-attn.txt  flash-attn, built from source after the lock (there is no
                                     official wheel for torch 2.11 + CUDA 13)

    python scripts/gpu_lock.py lock    # resolve requirements-gpu.in for the target, write the lock
    python scripts/gpu_lock.py check   # resolve the lock for the target: missing wheels, conflicts

Target: Linux x86-64 with glibc >= 2.35 (manylinux_2_35 and every older tag), CPython 3.11 -- the
ms-swift images' Ubuntu 22.04, Debian 12 and the Nix shell all qualify. The resolver is pip's own,
``pip install --dry-run --report`` with ``--platform``/``--python-version``/``--only-binary=:all:``;
wheels are read by HTTP range requests (``--use-feature=fast-deps``), so the multi-GB CUDA wheels
are not downloaded. A few pins are published only as source archives (deepspeed, oss2, ...): they
are built into wheels on this machine (``pip wheel --no-deps``, pure Python or, for crcmod, an
optional C speed-up) and offered to the resolver from a local folder. A pin the registry has no
usable file for is reported by name, and a stand-in without dependencies takes its place so that
the rest of the lock is still checked against each other.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-gpu.lock"
INPUT = ROOT / "requirements-gpu.in"
FLASH_ATTN = ROOT / "requirements-gpu-flash-attn.txt"
CPU_LOCK = ROOT / "requirements.lock"
INDEX = os.environ.get("GELAB_LOCK_INDEX", "https://pypi.org/simple")

PYTHON = (3, 11)
GLIBC_MINOR = 35  # manylinux_2_35: Ubuntu 22.04 (ms-swift's images); Debian 12 has 2.36


def platforms(glibc_minor: int) -> list[str]:
    """Linux x86-64 platform tags a glibc 2.<glibc_minor> machine accepts, newest first."""
    return ([f"manylinux_2_{m}_x86_64" for m in range(glibc_minor, 4, -1)]
            + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"])


PLATFORMS = platforms(GLIBC_MINOR)
# The GPU stack: versions chosen in requirements-gpu.in, never taken from the CPU lock.
GPU_STACK = re.compile(r"^(torch|torchvision|torchaudio|triton|transformers|tokenizers|deepspeed|vllm|xformers"
                       r"|nvidia-.*|cuda-.*)$")
# What flash-attn 2.8.3's setup.py imports when built with --no-build-isolation.
FLASH_ATTN_BUILD = ("torch", "packaging", "psutil", "ninja", "setuptools", "wheel", "einops")


def tags_for(platform_tags: list[str]) -> frozenset[Tag]:
    """Every wheel tag pip accepts for CPython 3.11 on these platforms."""
    return frozenset(cpython_tags(PYTHON, platforms=platform_tags)) | frozenset(
        compatible_tags(PYTHON, f"cp{PYTHON[0]}{PYTHON[1]}", platform_tags))


@functools.cache
def target_tags() -> frozenset[Tag]:
    return tags_for(PLATFORMS)


@functools.cache
def any_linux_tags() -> frozenset[Tag]:
    """Tags of any Linux x86-64 CPython 3.11, however new its glibc: their files' hashes go in the lock."""
    return tags_for(platforms(60))


def pip_platform_args() -> list[str]:
    args = []
    for p in PLATFORMS:
        args += ["--platform", p]
    return [*args, "--python-version", ".".join(map(str, PYTHON)), "--implementation", "cp",
            "--only-binary=:all:"]


# --- the lock file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    name: str  # as written in the lock
    version: str
    hashes: tuple[str, ...] = ()  # sha256 hex digests

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


def read_pins(text: str) -> dict[str, Pin]:
    """``name==version`` lines (with ``--hash=sha256:...`` continuations) -> pins by canonical name."""
    pins: dict[str, Pin] = {}
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^;\s]+)", spec)
        if not match:
            raise ValueError(f"not an exact pin: {line!r}")
        hashes = tuple(o.split("sha256:", 1)[1] for o in options if o.startswith("--hash=sha256:"))
        pin = Pin(match[1], match[2], hashes)
        pins[pin.key] = pin
    return pins


# --- what the registry has ------------------------------------------------------------------------


FilesOf = Callable[[str], list[dict]]


def index_files(name: str, index: str = INDEX) -> list[dict]:
    """The registry's files of project ``name`` (PEP 691 JSON: filename, url, hashes, yanked)."""
    req = urllib.request.Request(f"{index.rstrip('/')}/{canonicalize_name(name)}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return json.load(response)["files"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def _version_of(filename: str) -> tuple[str, Version, frozenset[Tag] | None] | None:
    """(kind, version, wheel tags) of a distribution file; None for names packaging cannot read."""
    try:
        if filename.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(filename)
            return "wheel", version, tags
        if filename.endswith((".tar.gz", ".zip")):
            _, version = parse_sdist_filename(filename)
            return "sdist", version, None
    except (ValueError, InvalidVersion):
        pass
    return None


@dataclass
class Availability:
    wheel: list[dict] = field(default_factory=list)  # files the target can install
    sdist: list[dict] = field(default_factory=list)
    lock_hashes: list[str] = field(default_factory=list)  # sha256 of every Linux x86-64 cp311 file


def availability(pin: Pin, files_of: FilesOf) -> Availability:
    tags, linux = target_tags(), any_linux_tags()
    found = Availability()
    want = Version(pin.version)
    files = files_of(pin.name)
    # Cheap pre-filter (index pages list thousands of files); parse them all if it finds none.
    files = [f for f in files if pin.version in f["filename"]] or files
    for f in files:
        parsed = _version_of(f["filename"])
        if parsed is None or parsed[1] != want or f.get("yanked"):
            continue
        kind, _, wheel_tags = parsed
        digest = f.get("hashes", {}).get("sha256")
        if kind == "sdist":
            found.sdist.append(f)
            if digest:
                found.lock_hashes.append(digest)
        elif wheel_tags is not None:
            if wheel_tags & tags:
                found.wheel.append(f)
            if digest and wheel_tags & linux:
                found.lock_hashes.append(digest)
    found.lock_hashes = sorted(set(found.lock_hashes))
    return found


@dataclass
class Probe:
    wheels: dict[str, Pin] = field(default_factory=dict)  # a wheel for the target is published
    sdists: dict[str, Pin] = field(default_factory=dict)  # only a source archive: build a wheel here
    missing: dict[str, str] = field(default_factory=dict)  # key -> "name==version: why"
    hashes: dict[str, list[str]] = field(default_factory=dict)  # key -> registry sha256s


def probe(pins: Iterable[Pin], files_of: FilesOf = index_files) -> Probe:
    """Sort pins by what the registry offers the target for them."""
    from concurrent.futures import ThreadPoolExecutor

    def look(pin: Pin) -> Availability | OSError:
        try:
            return availability(pin, files_of)
        except OSError as exc:  # the registry did not answer for this project
            return exc

    pins = list(pins)
    result = Probe()
    with ThreadPoolExecutor(max_workers=16) as pool:  # one index page per project, fetched side by side
        looked = list(pool.map(look, pins))
    for pin, found in zip(pins, looked):
        if isinstance(found, OSError):
            result.missing[pin.key] = f"{pin.name}=={pin.version}: registry unreachable ({found})"
            continue
        result.hashes[pin.key] = found.lock_hashes
        if found.wheel:
            result.wheels[pin.key] = pin
        elif found.sdist:
            result.sdists[pin.key] = pin
        else:
            result.missing[pin.key] = (f"{pin.name}=={pin.version}: no wheel for CPython 3.11 on "
                                       f"manylinux_2_{GLIBC_MINOR}_x86_64 (or older) and no source archive")
    return result


# --- wheels for the resolver --------------------------------------------------------------------


def stub_wheel(pin: Pin, folder: Path) -> Path:
    """A wheel with the pin's name and version and no dependencies (stands in for an unseen one)."""
    dist = re.sub(r"[-.]+", "_", pin.name)
    path = folder / f"{dist}-{pin.version}-py3-none-any.whl"
    info = f"{dist}-{pin.version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {pin.name}\nVersion: {pin.version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: gelab\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def pip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """pip of this interpreter, ignoring this machine's pip configuration (constraints, extra indexes)."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env = {k: v for k, v in env.items() if not k.startswith("PIP_") or k == "PIP_CONFIG_FILE"}
    proc = subprocess.run([sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args[:3])} ...: {proc.stderr[-3000:]}")
    return proc


def build_wheels(pins: Iterable[Pin], folder: Path, index: str = INDEX) -> None:
    """Wheels of source-only pins, built here (their metadata does not depend on the platform)."""
    specs = [f"{p.name}=={p.version}" for p in pins]
    if specs:
        pip("wheel", "--no-deps", "--index-url", index, "--wheel-dir", str(folder), *specs)


@dataclass
class Resolution:
    ok: bool
    installs: dict[str, dict] = field(default_factory=dict)  # key -> pip report item
    error: str = ""


def resolve(requirements: Path, wheelhouse: Path, constraints: Path | None = None,
            index: str = INDEX) -> Resolution:
    """pip's resolver for the target platform, without installing (``--dry-run --report``)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--use-feature=fast-deps", "--report", str(report),
                "--target", str(Path(tmp) / "target"), "--index-url", index, "--find-links", str(wheelhouse),
                *pip_platform_args(), "-r", str(requirements)]
        if constraints is not None:
            args += ["-c", str(constraints)]
        proc = pip(*args, check=False)
        if proc.returncode != 0 or not report.exists():
            return Resolution(False, error=(proc.stdout[-6000:] + "\n" + proc.stderr[-6000:]))
        items = json.loads(report.read_text())["install"]
    return Resolution(True, {canonicalize_name(i["metadata"]["name"]): i for i in items})


def conflict_lines(error: str) -> list[str]:
    """The lines of pip's resolver error that name the packages in conflict."""
    lines = [ln.strip() for ln in error.splitlines()]
    keep = [ln for ln in lines if " depends on " in ln or ln.startswith("The user requested")
            or ln.startswith("ERROR: Could not find a version") or ln.startswith("ERROR: No matching distribution")
            or ln.startswith("ERROR: Cannot install")]
    return keep or lines[-8:]


# --- consistency --------------------------------------------------------------------------------


TARGET_ENV = {"python_version": "3.11", "python_full_version": "3.11.0", "platform_system": "Linux",
              "sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def requirements_of(item: dict) -> list[Requirement]:
    """The dependencies a pip report item declares for the target (extras not requested: left out)."""
    out = []
    for text in item["metadata"].get("requires_dist", []) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(TARGET_ENV):
            out.append(req)
    return out


def pinned_by(item: dict, name: str) -> str | None:
    """The exact version ``item`` pins ``name`` to (``name==X``), if it does."""
    for req in requirements_of(item):
        if canonicalize_name(req.name) == canonicalize_name(name):
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                return exact[0]
    return None


def consistency(pins: dict[str, Pin], installs: dict[str, dict], flash_attn: Pin | None) -> list[str]:
    """What must agree beyond "pip found a solution": the GPU stack's exact pins and the CUDA major."""
    problems = []

    def version(name: str) -> str | None:
        pin = pins.get(canonicalize_name(name))
        return pin.version if pin else None

    swift = version("ms-swift")
    if swift is None or not swift.startswith("4.6."):
        problems.append(f"ms-swift must be 4.6.x (the version gelab's command lines are written for), lock has {swift}")
    for parent, child in (("vllm", "torch"), ("vllm", "torchvision"), ("vllm", "torchaudio"),
                          ("torchvision", "torch"), ("torchaudio", "torch"), ("xformers", "torch")):
        item = installs.get(parent)
        if item is None or version(parent) is None:
            continue
        wanted = pinned_by(item, child)
        if wanted is not None and wanted != version(child):
            problems.append(f"{parent}=={version(parent)} needs {child}=={wanted}, "
                            f"the lock has {child}=={version(child)}")
    for key, item in installs.items():  # a dependency pip had to add: the lock is not closed
        if key not in pins:
            problems.append(f"{item['metadata']['name']}=={item['metadata']['version']} is needed but not in the lock")
    for key, pin in pins.items():
        item = installs.get(key)
        if item is not None and item["metadata"]["version"] != pin.version:
            problems.append(f"{pin.name}: the lock pins {pin.version}, pip chose {item['metadata']['version']}")
    majors = {int(m) for k in pins for m in re.findall(r"^nvidia-.*-cu(\d+)$", k)}
    toolkit = version("cuda-toolkit")
    if toolkit:
        majors.add(int(toolkit.split(".")[0]))
    if len(majors) != 1:
        problems.append(f"the CUDA wheels mix CUDA majors {sorted(majors)}")
    if flash_attn is not None:
        for name in FLASH_ATTN_BUILD:
            if version(name) is None:
                problems.append(f"flash-attn is built with --no-build-isolation: {name} must be in the lock")
    return problems


# --- check / lock -------------------------------------------------------------------------------


@dataclass
class Check:
    missing: list[str]  # "name==version: why" for pins the registry has no usable file for
    problems: list[str]  # conflicts and inconsistencies (never excusable by a missing wheel)
    built: list[str]  # source-only pins built into wheels here
    resolved: int = 0


def flash_attn_pin(path: Path = FLASH_ATTN) -> Pin | None:
    return read_pins(path.read_text()).get("flash-attn") if path.exists() else None


def check(lock: Path = LOCK, flash_attn: Path = FLASH_ATTN, files_of: FilesOf = index_files,
          index: str = INDEX) -> Check:
    """Resolve ``lock`` for the target without installing it; see the module docstring."""
    pins = read_pins(lock.read_text())
    found = probe(pins.values(), files_of)
    problems = []
    for key, pin in pins.items():
        if not pin.hashes:
            problems.append(f"{pin.name}=={pin.version} has no --hash (pip installs the lock in hash-checking mode)")
        elif key not in found.missing and not set(pin.hashes) & set(found.hashes.get(key, [])):
            problems.append(f"{pin.name}=={pin.version}: none of its hashes is a file the registry publishes")
    fa = flash_attn_pin(flash_attn)
    if fa is not None:
        fa_found = probe([fa], files_of)
        if fa.key in fa_found.missing:
            found.missing[fa.key] = fa_found.missing[fa.key]
        elif not fa_found.sdists and not fa_found.wheels:
            problems.append(f"flash-attn=={fa.version}: not on the registry")
        elif fa.hashes and not set(fa.hashes) & set(fa_found.hashes.get(fa.key, [])):
            problems.append(f"flash-attn=={fa.version}: its hash is not the registry's source archive")
    with tempfile.TemporaryDirectory() as tmp:
        wheelhouse = Path(tmp) / "wheels"
        wheelhouse.mkdir()
        build_wheels(found.sdists.values(), wheelhouse, index)
        for key in found.missing:
            if key in pins:
                stub_wheel(pins[key], wheelhouse)
        plain = Path(tmp) / "pins.txt"
        plain.write_text("".join(f"{p.name}=={p.version}\n" for p in pins.values()))
        result = resolve(plain, wheelhouse, index=index)
    if not result.ok:
        problems += conflict_lines(result.error)
    else:
        problems += consistency(pins, result.installs, fa)
    return Check(sorted(found.missing.values()), problems,
                 sorted(f"{p.name}=={p.version}" for p in found.sdists.values()), len(result.installs))


def write_lock(source: Path = INPUT, out: Path = LOCK, prefer: Path = CPU_LOCK, files_of: FilesOf = index_files,
               index: str = INDEX) -> list[str]:
    """Resolve ``source`` for the target (other packages at ``prefer``'s versions where they fit) and write ``out``."""
    preferred = {k: p for k, p in read_pins(prefer.read_text()).items() if not GPU_STACK.match(k)}
    dropped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        wheelhouse = Path(tmp) / "wheels"
        wheelhouse.mkdir()
        exact = [ln for ln in source.read_text().splitlines() if "==" in ln.split("#", 1)[0]]
        source_only = probe([*preferred.values(), *read_pins("\n".join(exact)).values()], files_of).sdists
        build_wheels(source_only.values(), wheelhouse, index)
        constraints = Path(tmp) / "constraints.txt"
        while True:
            constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in preferred.values()))
            result = resolve(source, wheelhouse, constraints, index)
            if result.ok:
                chosen = [Pin(i["metadata"]["name"], i["metadata"]["version"]) for i in result.installs.values()]
                new = probe(chosen, files_of)
                if not set(new.sdists) - set(source_only):
                    break
                build_wheels([p for k, p in new.sdists.items() if k not in source_only], wheelhouse, index)
                source_only.update(new.sdists)
                continue
            conflicting = set(re.findall(r"The user requested \(constraint\) ([A-Za-z0-9._-]+)==", result.error))
            conflicting = {canonicalize_name(n) for n in conflicting} & set(preferred)
            if not conflicting:
                raise RuntimeError("requirements-gpu.in does not resolve:\n" + "\n".join(conflict_lines(result.error)))
            for key in sorted(conflicting):
                dropped.append(f"{preferred[key].name} (requirements.lock: {preferred[key].version})")
                del preferred[key]
    if new.missing:
        raise RuntimeError("the registry has no usable file for: " + "; ".join(new.missing.values()))
    lines = [
        "# python 3.11",
        "# The paper profile's GPU environment: Linux x86-64 (glibc >= 2.35), CPython 3.11, CUDA 13",
        "# (torch 2.11.0, vLLM 0.23.0, ms-swift 4.6.0). Written by `python scripts/gpu_lock.py lock` from",
        "# requirements-gpu.in; checked by tests/test_gpu_lock.py. Every hash is a file the registry publishes.",
        "# Install: pip install -r requirements-gpu.lock (hash-checked), then flash-attn from",
        "# requirements-gpu-flash-attn.txt (`make flash-attn`). The CPU lock is requirements.lock.",
    ]
    for pin in sorted(chosen, key=lambda p: p.key):
        hashes = new.hashes[pin.key]
        lines.append(f"{pin.name}=={pin.version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in hashes))
    out.write_text("\n".join(lines) + "\n")
    return dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=["lock", "check"])
    args = parser.parse_args(argv)
    if args.command == "lock":
        dropped = write_lock()
        print(f"wrote {LOCK.relative_to(ROOT)}" + (f"; versions of requirements.lock the GPU stack does not allow: "
                                                   f"{', '.join(dropped)}" if dropped else ""))
        return 0
    result = check()
    print(f"{LOCK.relative_to(ROOT)}: {result.resolved} packages resolved for CPython 3.11 on "
          f"manylinux_2_{GLIBC_MINOR}_x86_64; built from source here: {', '.join(result.built) or 'none'}")
    for line in result.missing:
        print(f"registry lacks: {line}")
    for line in result.problems:
        print(f"PROBLEM: {line}")
    return 1 if result.problems else (3 if result.missing else 0)


if __name__ == "__main__":
    sys.exit(main())
