"""``gelab check learning``: each training stage moves its own objective on a small fixed problem.

Not a pipeline stage: ``make learning-checks`` runs it after ``dvc repro model`` (it needs the
environment, the SFT data and the tiny base model). See :mod:`gelab.checks.learning`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

STAGES = ("sft", "st_rl", "mt_rl")


def cmd_learning(args: argparse.Namespace) -> int:
    from gelab.checks.learning import LearningCheck

    if args.fresh and Path(args.out).exists():
        shutil.rmtree(args.out)
    check = LearningCheck(args.params, args.out, args.metrics, env_dir=args.env, sft_file=args.sft_data)
    failed = []
    for stage in args.stage or STAGES:
        result = check.run(stage)
        print(f"learning check {stage}: before {result['before']:.2f}  after {result['after']:.2f}  "
              f"threshold {result['threshold']}  {'passed' if result['passed'] else 'FAILED'}  "
              f"({result['wall_time_s']:.0f} s) -> {Path(args.metrics) / (stage + '.json')}", flush=True)
        if not result["passed"]:
            failed.append(stage)
    if failed:
        print(f"gelab check learning: {', '.join(failed)} did not learn", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="learning checks of the training stages")
    check_sub = check.add_subparsers(dest="check_command", required=True)
    learning = check_sub.add_parser("learning", help="train each stage on a small fixed problem and check it learns")
    learning.add_argument("--params", default="params.yaml", help="params file (sections learning, model, launch, "
                                                                 "sft, st_rl, mt_rl)")
    learning.add_argument("--env", default="build/env/base", help="environment folder")
    learning.add_argument("--sft-data", default="build/data/sft.jsonl", help="SFT data the check's rows come from")
    learning.add_argument("--out", default="build/learning", help="training runs, data and predictions")
    learning.add_argument("--metrics", default="metrics/learning", help="folder for STAGE.json")
    learning.add_argument("--stage", action="append", choices=STAGES, help="run only this check (repeatable; "
                                                                           "st_rl and mt_rl need the sft check's run)")
    learning.add_argument("--fresh", action="store_true", help="delete OUT first (otherwise finished runs are reused)")
    learning.set_defaults(func=cmd_learning)
