"""``gelab view``: the static site (environment browser, trajectory explorer, failure summaries) and
the case-study figures, from an environment, its variants and interactive-evaluation logs."""

from __future__ import annotations

import argparse
from pathlib import Path

from gelab.cli import at_least
from gelab.errors import InputError, quote

TRAJECTORIES = "interactive/trajectories.jsonl"  # under EVAL_DIR/MODEL/ (the eval stages of dvc.yaml)


def _pairs(specs: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs or []:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise InputError(f"{option} expects NAME=PATH, got {quote(spec)}")
        if name in out:
            raise InputError(f"{option}: {quote(name)} given twice")
        out[name] = path
    return out


def _logs(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """model -> log path (params' checkpoints and reference policies first), and the case-study models."""
    logs: dict[str, str] = {}
    case_models: list[str] = []
    if args.params:
        from gelab.params import EvalParams, load_section

        params = load_section(args.params, "eval", EvalParams)
        for model in [*params.checkpoints, *params.reference_policies]:
            logs[model] = str(Path(args.eval_dir) / model / TRAJECTORIES)
        case_models = list(params.checkpoints)
    for model, path in _pairs(args.run, "--run").items():
        logs[model] = path
    if args.case_models is not None:
        case_models = [m for m in args.case_models.split(",") if m]
    elif not args.params:
        case_models = list(logs)
    return logs, case_models


def cmd_view(args: argparse.Namespace) -> int:
    from gelab.env.envdir import load_environment
    from gelab.report.viewer.cases import case_figures, save_cases
    from gelab.report.viewer.logs import check_model_name, read_episodes
    from gelab.report.viewer.site import build_site

    logs, case_models = _logs(args)
    variant_dirs = _pairs(args.variant, "--variant")
    for name in variant_dirs:
        check_model_name(name, "--variant")
        if name == "base":
            raise InputError("--variant: the name 'base' is the --env environment")
    unknown = [m for m in case_models if m not in logs] if args.cases else []
    if unknown:
        raise InputError(f"--case-models: no trajectory log for {quote(unknown[0])} "
                         f"(logs: {', '.join(logs) or 'none'})")
    env = load_environment(args.env)
    variants = {name: load_environment(path) for name, path in variant_dirs.items()}
    runs = {check_model_name(m, "--run"): read_episodes(m, path) for m, path in logs.items()}
    # the case studies are drawn before anything is written: a failure leaves the site and the cases as they were
    figures = case_figures(env, runs, case_models, args.cases_count, progress=not args.quiet) if args.cases else []
    counts = build_site(args.out, env, runs, variants=variants, sources=logs, image_width=args.image_width,
                        progress=not args.quiet)
    print(f"wrote {args.out}/index.html: {counts['episodes']} episodes of {len(runs)} model(s), "
          f"{len(variants) + 1} environment(s), {counts['files']} files, {counts['bytes'] / 1e6:.1f} MB")
    if args.cases:
        pngs = save_cases(args.cases, figures)
        print(f"wrote {len(pngs)} case studies of {', '.join(case_models) or 'no model'} to {args.cases}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    view = sub.add_parser("view", help="static site: environment browser, trajectories, failure summaries")
    view.add_argument("--env", required=True, help="environment folder the episodes ran in (Env-Base)")
    view.add_argument("--variant", action="append", metavar="NAME=DIR", help="a variant environment, shown beside the base")
    view.add_argument("--run", action="append", metavar="MODEL=LOG", help="a trajectory log (JSONL) and the model's name")
    view.add_argument("--params", help="params.yaml: view the logs of eval.checkpoints and eval.reference_policies")
    view.add_argument("--eval-dir", default="build/eval", help=f"with --params: logs are EVAL_DIR/MODEL/{TRAJECTORIES}")
    view.add_argument("--out", required=True, help="site folder to write (replaced whole); open OUT/index.html")
    view.add_argument("--cases", help="also write case-study PNGs into this folder (replaced whole)")
    view.add_argument("--case-models", help="comma-separated models of the case studies "
                                            "(default: eval.checkpoints with --params, else every --run)")
    view.add_argument("--cases-count", type=at_least(0), default=3, help="number of case studies (default 3)")
    view.add_argument("--image-width", type=at_least(16), default=300, help="screenshot width in the site, pixels")
    view.add_argument("--quiet", action="store_true", help="no progress bars")
    view.set_defaults(func=cmd_view)
