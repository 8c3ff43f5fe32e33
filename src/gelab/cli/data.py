"""``gelab tasks`` and ``gelab data build``: task lists and the datasets of SPEC §4."""

from __future__ import annotations

import argparse
import time

from gelab.env.envdir import load_environment
from gelab.errors import InputError, quote
from gelab.params import DataParams, load_section, replace


def cmd_tasks(args: argparse.Namespace) -> int:
    from gelab.tasks.universe import task_universe, write_tasks

    env = load_environment(args.env)
    n = write_tasks(task_universe(env.structure, args.subtree), args.out)
    print(f"wrote {n} tasks of subtree {args.subtree} to {args.out}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from gelab.data.datasets import Source, build_all

    params = load_section(args.params, "data", DataParams) if args.params else DataParams()
    base = Source.of(load_environment(args.env), args.env)
    variants = {}
    for spec in args.variant or []:
        kind, _, path = spec.partition("=")
        if not path:
            raise InputError(f"--variant expects KIND=DIR, got {quote(spec)}")
        variants[kind] = Source.of(load_environment(path), path)
    if not args.variant:
        params = replace(params, "command line: data", ood_variants=[])
    start = time.perf_counter()
    counts = build_all(params, base, variants, args.out)
    for name, n in counts.items():
        print(f"{name:28s} {n:7d}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.2f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="write a subtree's task universe as JSONL")
    tasks.add_argument("--env", required=True, help="environment folder")
    tasks.add_argument("--subtree", required=True, help="subtree root, e.g. page_5")
    tasks.add_argument("--out", required=True, help="JSONL file to write")
    tasks.set_defaults(func=cmd_tasks)

    data = sub.add_parser("data", help="build datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    build = data_sub.add_parser("build", help="build every dataset of SPEC §4 into a folder")
    build.add_argument("--env", required=True, help="base environment folder")
    build.add_argument("--variant", action="append", metavar="KIND=DIR",
                       help="variant environment for OOD static files (repeatable)")
    build.add_argument("--params", help="params.yaml (section 'data')")
    build.add_argument("--out", required=True, help="dataset folder to write")
    build.set_defaults(func=cmd_build)
