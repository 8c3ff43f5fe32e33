"""``gelab report build | paper-rev``: the paper-comparison reports and the ``paper-targets`` branch."""

from __future__ import annotations

import argparse
from pathlib import Path

from gelab.errors import InputError, quote
from gelab.report.schema import MetricsError


def _curve_args(specs: list[str] | None) -> dict[str, Path]:
    curves = {}
    for spec in specs or []:
        stage, _, path = spec.partition("=")
        if not path:
            raise InputError(f"--curve expects STAGE=PATH, got {quote(spec)}")
        curves[stage] = Path(path)
    return curves


def cmd_build(args: argparse.Namespace) -> int:
    from gelab.report.build import build_report

    try:
        md = build_report(args.metrics, args.targets, args.out, _curve_args(args.curve))
    except MetricsError as exc:
        raise InputError(f"bad input, report not written: {exc}") from None
    print(f"wrote {md} (and plots in {args.out})")
    return 0


def cmd_paper_rev(args: argparse.Namespace) -> int:
    from gelab.report.paper_ref import GitError, make_paper_ref

    try:
        commit = make_paper_ref(args.repo, args.targets, args.metrics, args.ref)
    except (GitError, MetricsError) as exc:
        raise InputError(str(exc)) from None
    print(f"branch {args.ref} -> {commit[:12]}: paper targets under {args.metrics}/\n"
          f"compare with: dvc metrics diff {args.ref}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="paper-comparison reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)

    build = report_sub.add_parser("build", help="write Markdown tables and PNG plots: ours / paper / Δ")
    build.add_argument("--metrics", default="metrics", help="metrics folder (metrics/<model>/<kind>.json)")
    build.add_argument("--targets", default="paper/targets.yaml", help="the paper's numbers")
    build.add_argument("--out", default="reports", help="reports folder to write (replaced whole)")
    build.add_argument("--curve", action="append", metavar="STAGE=PATH",
                       help="training-curve file of a stage (CSV or JSONL; default metrics/train/STAGE_steps.csv)")
    build.set_defaults(func=cmd_build)

    rev = report_sub.add_parser("paper-rev", help="write the paper targets to git branch paper-targets "
                                                  "for `dvc metrics diff paper-targets`")
    rev.add_argument("--repo", default=".", help="git repository (default: here)")
    rev.add_argument("--targets", default="paper/targets.yaml")
    rev.add_argument("--metrics", default="metrics", help="metrics folder inside the repository")
    rev.add_argument("--ref", default="paper-targets", help="branch to create or move")
    rev.set_defaults(func=cmd_paper_rev)
