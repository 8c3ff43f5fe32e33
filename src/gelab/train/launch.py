"""Launching ms-swift: the environment of a launch (torchrun variables from ``launch`` params,
overridden by the environment; offline flags; W&B/TensorBoard only when asked), one attempt as a
subprocess with its wall time recorded in ``run/gelab_attempts.json`` every :data:`HEARTBEAT_S`
seconds (a killed attempt still counts), and stopping the whole process tree on Ctrl-C, SIGTERM or
SIGHUP (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from gelab.interrupts import Terminated
from gelab.io import atomic_write_json
from gelab.params import LaunchParams
from gelab.train.config import TrainError

LAUNCH_ENV = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")
OFFLINE_ENV = {  # never wait on model hubs: everything is a local path
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "USE_HF": "1",
    "MODELSCOPE_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1",
}


def world_size(env: dict[str, str]) -> int:
    """Ranks of a launch: NNODES x NPROC_PER_NODE (as :func:`launch_env` resolved them)."""
    try:
        return int(env["NNODES"]) * int(env["NPROC_PER_NODE"])
    except (KeyError, ValueError) as exc:
        raise TrainError(f"launch: NNODES and NPROC_PER_NODE must be whole numbers ({exc})") from None


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_env(launch: LaunchParams, max_pixels: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: launch topology (environment wins over params), offline flags."""
    base = dict(os.environ if base is None else base)
    env = dict(base)
    topology = {"NNODES": launch.nnodes, "NODE_RANK": launch.node_rank, "MASTER_ADDR": launch.master_addr,
                "MASTER_PORT": launch.master_port, "NPROC_PER_NODE": launch.nproc_per_node}
    for key, value in topology.items():
        env[key] = base.get(key, str(value))
    if env["NNODES"] != "1" and not env["MASTER_ADDR"]:
        raise TrainError("launch.master_addr: several nodes need node 0's address: set MASTER_ADDR on every node "
                         "(or launch.master_addr)")
    if env["NNODES"] == "1":
        if not env["MASTER_ADDR"]:  # the paper profile's "" on one node (e.g. one 8-GPU machine)
            env["MASTER_ADDR"] = "127.0.0.1"
        if "MASTER_PORT" not in base:
            env["MASTER_PORT"] = str(free_port())  # one node: any free port, so runs side by side never collide
    env.update(OFFLINE_ENV)
    env["MAX_PIXELS"] = str(max_pixels)  # model.max_pixels: qwen_vl_utils' resize cap (448² -> 256 visual tokens)
    env.update(launch.extra_env)
    if launch.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    src = str(Path(__file__).resolve().parents[2])  # the plugin imports gelab in every rank
    env["PYTHONPATH"] = os.pathsep.join([src, *([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])])
    return env


def env_for_log(env: dict[str, str]) -> dict[str, str]:
    """The variables a run depends on (never secrets): what ``command.sh`` exports."""
    keys = [*LAUNCH_ENV, *OFFLINE_ENV, "MAX_PIXELS", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"]
    return {k: env[k] for k in keys if k in env}


ATTEMPTS = "gelab_attempts.json"  # every launch of ms-swift in this run and its wall time so far
HEARTBEAT_S = 10.0  # how often the running attempt's wall time is written (a killed attempt loses at most this)
STOP_GRACE_S = 30.0  # after SIGTERM, how long ms-swift and its ranks may take to end before SIGKILL


def read_attempts(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((run_dir / ATTEMPTS).read_text())["attempts"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def run_attempt(command: list[str], env: dict[str, str], run_dir: Path, resumed_from: str | None,
                record: bool = True) -> tuple[int, float]:
    """Run ms-swift once; returns (exit status, wall seconds). With ``record``, the attempt is appended
    to ``run/gelab_attempts.json`` and its wall time rewritten every :data:`HEARTBEAT_S` seconds."""
    attempts = read_attempts(run_dir) if record else []
    for a in attempts:
        if a.get("status") == "running":
            a["status"] = "killed"  # an attempt that never recorded its end
    entry: dict[str, Any] = {"resumed_from": resumed_from, "wall_time_s": 0.0, "status": "running"}
    attempts.append(entry)
    start = time.perf_counter()

    def save() -> None:
        entry["wall_time_s"] = round(time.perf_counter() - start, 1)
        if record:
            atomic_write_json(run_dir / ATTEMPTS, {"attempts": attempts})

    save()
    proc = subprocess.Popen(command, env=env)
    try:
        while True:
            try:
                code = proc.wait(timeout=HEARTBEAT_S)
                break
            except subprocess.TimeoutExpired:
                save()
    except BaseException as exc:  # Ctrl-C, SIGTERM (gelab.interrupts) or an error of gelab's own
        stop_tree(proc)
        entry["status"] = "terminated" if isinstance(exc, Terminated) else "interrupted"
        save()
        raise
    entry["status"] = f"exit {code}"
    save()
    return code, time.perf_counter() - start


def stop_tree(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``proc`` and every process under it (ms-swift, torchrun, the ranks): SIGTERM to each, then
    SIGKILL to those still running after ``grace_s`` seconds."""
    import psutil

    try:
        below = psutil.Process(proc.pid).children(recursive=True)  # before the parents die and orphan them
    except psutil.Error:
        below = []
    for p in below:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + grace_s
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

    def running(p: psutil.Process) -> bool:  # an orphan's zombie, waiting for init to reap it, has ended
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    while (alive := [p for p in below if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


def total_wall(run_dir: Path) -> float:
    """Wall seconds of every ms-swift attempt of this run (killed ones to within :data:`HEARTBEAT_S`)."""
    return sum(float(a.get("wall_time_s") or 0.0) for a in read_attempts(run_dir))
