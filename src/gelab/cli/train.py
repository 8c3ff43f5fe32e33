"""``gelab train``: the tiny base model and the three training stages (SFT, ST-RL, MT-RL)."""

from __future__ import annotations

import argparse
import json

from gelab.params import load_section


def cmd_model(args: argparse.Namespace) -> int:
    from gelab.params import ModelParams
    from gelab.train.tiny_model import build_tiny_model

    model = load_section(args.params, "model", ModelParams)
    summary = build_tiny_model(model.tiny, model.tiny.corpus, args.out, model.max_pixels)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    import sys

    from gelab.train.config import TrainError, TrainParams
    from gelab.train.training import run_stage

    tp = TrainParams.load(args.params)
    init = args.init or tp.model.base
    try:
        summary = run_stage(tp, args.stage, init, args.out, args.metrics, params_file=args.params)
    except TrainError as exc:
        print(f"gelab train {args.stage}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def cmd_command(args: argparse.Namespace) -> int:
    import shlex

    from gelab.train.command import stage_command
    from gelab.train.config import TrainParams
    from gelab.train.launch import launch_env, world_size

    tp = TrainParams.load(args.params)
    ranks = world_size(launch_env(tp.launch, tp.model.max_pixels))  # NNODES/NPROC_PER_NODE: environment wins
    print(shlex.join(stage_command(tp, args.stage, args.init or tp.model.base, args.dataset or tp.stage(args.stage).dataset,
                                   args.out + "/run", ranks)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="build the tiny model and run the training stages")
    train_sub = train.add_subparsers(dest="train_command", required=True)

    model = train_sub.add_parser("model", help="build the embedded default model (random init, own tokenizer)")
    model.add_argument("--params", default="params.yaml", help="params file (section 'model')")
    model.add_argument("--out", required=True, help="model folder to write")
    model.set_defaults(func=cmd_model)

    for stage, help_text in [("sft", "supervised fine-tuning (swift sft, ZeRO-3)"),
                             ("st_rl", "single-turn GRPO with the four rewards (swift rlhf)"),
                             ("mt_rl", "multi-turn GRPO with the gelab_nav scheduler (swift rlhf)")]:
        p = train_sub.add_parser(stage.replace("_", "-"), help=help_text)
        p.add_argument("--params", default="params.yaml", help="params file")
        p.add_argument("--init", help="starting weights (default: model.base)")
        p.add_argument("--out", required=True, help="checkpoint folder (final weights in OUT/final)")
        p.add_argument("--metrics", default="metrics/train", help="folder for STAGE.json and STAGE_steps.csv")
        p.set_defaults(func=cmd_stage, stage=stage)

    show = train_sub.add_parser("command", help="print a stage's ms-swift command line without running it")
    show.add_argument("stage", choices=["sft", "st_rl", "mt_rl"])
    show.add_argument("--params", default="params.yaml")
    show.add_argument("--init")
    show.add_argument("--dataset")
    show.add_argument("--out", default="OUT")
    show.set_defaults(func=cmd_command)
