"""``gelab eval static | interactive``: the two benchmarks of SPEC §5, for any policy or model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from gelab.cli import at_least
from gelab.errors import InputError, quote
from gelab.eval.backends import MODEL_BACKENDS
from gelab.eval.policies import REFERENCE_POLICIES
from gelab.params import PATCH_GROUP, EvalParams, ModelParams, load_section, replace

POLICIES = (*REFERENCE_POLICIES, *MODEL_BACKENDS)


def _params(args: argparse.Namespace) -> EvalParams:
    params = load_section(args.params, "eval", EvalParams) if args.params else EvalParams()
    overrides = {k: getattr(args, k) for k in ("seed", "temperature", "top_p", "top_k", "repetition_penalty",
                                               "max_new_tokens", "batch_size", "device", "attempts", "max_steps")
                 if getattr(args, k, None) is not None}
    return replace(params, "command line: eval", **overrides)


def _max_pixels(args: argparse.Namespace) -> int:
    """The image budget: --max-pixels, else the profile's ``model.max_pixels`` (the one training used)."""
    if args.max_pixels is not None:
        return int(args.max_pixels)
    if args.params:
        from gelab.io import read_yaml
        from gelab.params import ParamsError

        raw = read_yaml(args.params, error=ParamsError)
        if isinstance(raw, dict) and "model" in raw:  # an evaluation-only params file may have no model section
            return load_section(args.params, "model", ModelParams).max_pixels
    return ModelParams().max_pixels


def _batch_size(args: argparse.Namespace, params: EvalParams) -> int:
    """Requests per policy call; 0 = all at once. Reference policies take all unless --batch-size says."""
    if args.batch_size is not None or args.policy in MODEL_BACKENDS:
        return params.batch_size
    return 0


def _progress(label: str):  # type: ignore[no-untyped-def]
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 5 or done == total:
            last[0] = now
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return report


def _policy(args: argparse.Namespace, params: EvalParams, temperature: float, env_dir: str | None) -> Any:
    from gelab.eval.backends import Sampling, make_backend
    from gelab.eval.policies import ModelPolicy, reference_policy

    if args.policy in MODEL_BACKENDS:
        sampling = Sampling(temperature, params.top_p, params.top_k, params.max_new_tokens, params.repetition_penalty)
        if args.policy == "openai":
            if not args.base_url:
                raise InputError("--policy openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
            options: dict[str, Any] = {"base_url": args.base_url, "model": args.api_model or args.model,
                                       "api_key_env": args.api_key_env, "concurrency": args.concurrency,
                                       "connect_timeout_s": params.connect_timeout_s,
                                       "read_timeout_s": params.read_timeout_s,
                                       "request_deadline_s": params.request_deadline_s,
                                       "retries": params.retries, "retry_backoff_s": params.retry_backoff_s}
        else:
            if not args.model:
                raise InputError(f"--policy {args.policy} needs --model (an HF checkpoint folder)")
            options = {"model": args.model, "max_pixels": _max_pixels(args)}
            if args.policy == "hf":
                options["device"] = params.device
        return ModelPolicy(make_backend(args.policy, sampling, **options), params.seed)
    if env_dir is None:
        raise InputError(f"--policy {args.policy} needs --env (the environment it navigates)")
    from gelab.env.envdir import load_environment
    from gelab.env.navigation import Navigator

    return reference_policy(args.policy, Navigator(load_environment(env_dir).structure), params.seed)


def _check_inputs(args: argparse.Namespace, samples: list[dict[str, Any]] | None = None, env: Any = None) -> None:
    """Before the first model call: the model folder has its config, and every image the run can show
    exists (so a missing file stops the run at once, not minutes in)."""
    if args.policy not in MODEL_BACKENDS:
        return  # reference policies read neither weights nor images
    if args.policy in ("hf", "vllm") and args.model and not (Path(args.model) / "config.json").is_file():
        raise InputError(f"--model: {args.model} has no config.json (not a Hugging Face model folder)")
    if samples is not None:
        for i, sample in enumerate(samples, start=1):
            images = sample.get("images")
            if not isinstance(images, list) or not images or not isinstance(images[0], str):
                raise InputError(f"{args.samples}: sample {quote(sample.get('id', i))}: no image path (field images)")
            if not Path(images[0]).is_file():
                raise InputError(f"{images[0]}: missing image of sample {quote(sample.get('id', i))} in {args.samples} "
                                 f"(build the environment and data first)")
    if env is not None:
        from gelab.env.envdir import check_images

        check_images(env, full=False)  # an episode can reach every page (back and home)


def _identity(args: argparse.Namespace, params: EvalParams, temperature: float, **extra: Any) -> dict[str, Any]:
    from gelab.eval.records import code_digest, folder_signature
    from gelab.io import file_digest

    model = args.model or args.api_model
    ident = {"policy": args.policy, "model": str(model) if model else None, "seed": params.seed, **extra}
    # what the rows depend on beyond the names above: a log is continued only by the very same run
    ident["code"] = code_digest()
    if args.policy in ("hf", "vllm") and args.model:
        ident["model_files"] = folder_signature(args.model)
    if args.policy == "openai":
        ident["base_url"] = args.base_url
    for name, path in (("samples", getattr(args, "samples", None)), ("tasks", getattr(args, "tasks", None))):
        if path:
            ident[f"{name}_sha256"] = file_digest(path)
    if args.env:
        from gelab.env.envdir import ART_FILE
        from gelab.env.structure import STRUCTURE_FILE

        ident["env_sha256"] = [file_digest(Path(args.env) / name) for name in (STRUCTURE_FILE, ART_FILE)]
    if args.policy in MODEL_BACKENDS:
        ident.update(temperature=temperature, top_p=params.top_p, top_k=params.top_k,
                     repetition_penalty=params.repetition_penalty, max_new_tokens=params.max_new_tokens,
                     max_pixels=_max_pixels(args))
    return ident


def _write_plot(path: str | None, rows: list[dict[str, Any]]) -> None:
    if path:
        from gelab.io import atomic_write_json

        atomic_write_json(path, rows)


def cmd_static(args: argparse.Namespace) -> int:
    from gelab.eval.intervals import SUFFIX
    from gelab.eval.static import score_file
    from gelab.io import atomic_write_json, read_jsonl

    params = _params(args)
    samples: list[dict[str, Any]] | None = None
    if args.samples:
        samples = read_jsonl(args.samples)
        if not samples:
            raise InputError(f"{args.samples}: no samples")
        if args.policy:
            from gelab.eval.static_run import check_samples

            check_samples(samples, args.samples)
    if args.policy:
        from gelab.eval.static_run import predict, select_samples

        if samples is None:
            raise InputError("--policy needs --samples (the static file to answer)")
        limit = args.limit_tasks or None
        samples = select_samples(samples, limit, params.seed)
        from gelab.eval.records import AppendLog, claim_log

        _check_inputs(args, samples=samples)
        claim_log(args.predictions, _identity(args, params, params.static_temperature, samples=args.samples,
                                              limit_tasks=limit), fresh=args.fresh, restart=args.restart_if_changed)
        with AppendLog(args.predictions) as log:  # read once: what is done, then continued by predict
            done = {str(r.get("id")) for r in log.rows}
            pending = any(str(s["id"]) not in done for s in samples)  # a finished file needs no model loaded
            policy = _policy(args, params, params.static_temperature, args.env) if pending else None
            start = time.perf_counter()
            batch = _batch_size(args, params) or max(1, len(samples))
            made = predict(samples, policy, log, batch_size=batch,
                           samples_name=args.samples, progress=_progress(f"static {Path(args.samples).name}"))
        print(f"{made} predictions in {time.perf_counter() - start:.1f} s -> {args.predictions}")
    metrics = score_file(args.predictions, samples, args.samples or "samples")
    atomic_write_json(args.out, metrics)
    _write_plot(args.plot, [{"path_length": int(n), **{k: x for k, x in v.items() if not k.endswith(SUFFIX)}}
                            for n, v in metrics["per_path"].items()])
    print(f"edge {metrics['edge']:.2f}  path {metrics['path'] or 0:.2f}  overall {metrics['overall']:.2f}  "
          f"task success {metrics['task_success']:.2f}  ({metrics['steps']} steps) -> {args.out}")
    return 0


def cmd_interactive(args: argparse.Namespace) -> int:
    from gelab.env.envdir import load_environment
    from gelab.env.navigation import Navigator
    from gelab.eval.interactive import interactive_metrics, run_episodes
    from gelab.eval.records import AppendLog, claim_log
    from gelab.eval.subsets import stratified
    from gelab.io import atomic_write_json
    from gelab.tasks.universe import check_tasks, read_tasks, task_universe

    params = _params(args)
    attempts, max_steps = params.attempts, params.max_steps
    if not args.env:
        raise InputError("--env is required (the environment the episodes run in)")
    env = load_environment(args.env)
    nav = Navigator(env.structure)
    if bool(args.subtree) == bool(args.tasks):
        raise InputError("give exactly one of --subtree and --tasks")
    if args.tasks:
        tasks = read_tasks(args.tasks)
        check_tasks(tasks, env.structure, nav, args.tasks)
    else:
        tasks = task_universe(env.structure, args.subtree, nav)
    tasks = stratified(tasks, args.limit_tasks or None, lambda t: t.path_length, params.seed)
    trajectories = args.trajectories or str(Path(args.out).with_suffix("")) + ".trajectories.jsonl"
    _check_inputs(args, env=env)
    claim_log(trajectories, _identity(args, params, params.temperature, env=str(args.env),
                                      tasks=args.tasks or args.subtree, limit_tasks=args.limit_tasks or None,
                                      attempts=attempts, max_steps=max_steps), fresh=args.fresh,
              restart=args.restart_if_changed)
    policy = _policy(args, params, params.temperature, args.env)
    batch = _batch_size(args, params) or None  # None: every live episode in one call
    start = time.perf_counter()
    with AppendLog(trajectories) as log:
        episodes = run_episodes(nav, tasks, policy, attempts=attempts, max_steps=max_steps,
                                image_of=lambda page: str(env.model_image_path(page)), log=log, batch_size=batch,
                                progress=_progress(f"interactive {args.policy}"))
    metrics = interactive_metrics(episodes, attempts, max_steps, seed=params.seed)
    atomic_write_json(args.out, metrics)
    _write_plot(args.plot, [{"path_length": int(n),
                             **{f"{mode}_{k}": metrics[mode]["per_path"][n][k] for mode in ("strict", "lenient")
                                for k in ("pass@1", "pass@k")}} for n in metrics["strict"]["per_path"]])
    s, le = metrics["strict"], metrics["lenient"]
    print(f"{len(tasks)} tasks x {attempts} in {time.perf_counter() - start:.1f} s: strict pass@1 {s['pass@1']:.2f} "
          f"pass@{attempts} {s['pass@k']:.2f}; lenient pass@1 {le['pass@1']:.2f} pass@{attempts} {le['pass@k']:.2f}"
          f" -> {args.out}")
    return 0


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("policy and model")
    g.add_argument("--policy", choices=POLICIES, help="reference policy or model backend")
    g.add_argument("--env", help="environment folder (reference policies navigate it)")
    g.add_argument("--model", help="hf/vllm: HF checkpoint folder; openai: model name if --api-model is not given")
    g.add_argument("--base-url", help="openai: endpoint base, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-model", help="openai: the served model name")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable holding the key")
    g.add_argument("--concurrency", type=at_least(1), default=8, help="openai: requests in flight")
    g.add_argument("--device", help="hf: auto | cpu | cuda")
    g.add_argument("--max-pixels", type=at_least(PATCH_GROUP * PATCH_GROUP),
                   help="image budget (default: model.max_pixels of --params, else 200704 = 448²)")
    s = p.add_argument_group("sampling and batching (defaults: params.yaml section eval)")
    s.add_argument("--params", help="params.yaml (sections 'eval' and, for the image budget, 'model')")
    s.add_argument("--seed", type=int)
    s.add_argument("--temperature", type=float)
    s.add_argument("--top-p", type=float)
    s.add_argument("--top-k", type=int)
    s.add_argument("--repetition-penalty", type=float)
    s.add_argument("--max-new-tokens", type=int)
    s.add_argument("--batch-size", type=int, help="requests per model call (0: all in one call)")
    s.add_argument("--limit-tasks", type=at_least(0), help="a stratified subset of this many tasks (all their steps); 0 = all")
    s.add_argument("--fresh", action="store_true", help="discard earlier rows instead of resuming")
    s.add_argument("--restart-if-changed", action="store_true",
                   help="resume a log written by this same run, start it over if any setting, file or code changed "
                        "(the DVC stages, whose outputs persist; without it such a log is refused)")
    s.add_argument("--plot", help="also write the per-path-length curve (JSON rows) here")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="static and interactive benchmarks")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)

    st = ev_sub.add_parser("static", help="teacher-forced benchmark: predict (with --policy) and score")
    st.add_argument("--predictions", required=True,
                    help="prediction JSONL: scored as given, or written (appended, resumable) with --policy")
    st.add_argument("--samples", help="static data file the predictions answer (checked row by row)")
    st.add_argument("--out", required=True, help="metrics JSON to write")
    _model_options(st)
    st.set_defaults(func=cmd_static)

    it = ev_sub.add_parser("interactive", help="k attempts per task in the environment, batched")
    it.add_argument("--subtree", help="task universe of this subtree (e.g. page_5)")
    it.add_argument("--tasks", help="or a task JSONL file")
    it.add_argument("--attempts", type=int, help="attempts per task (default: params, 5)")
    it.add_argument("--max-steps", type=int, help="step cap per episode (default: params, 12)")
    it.add_argument("--out", required=True, help="metrics JSON to write")
    it.add_argument("--trajectories", help="trajectory JSONL (default: OUT without .json + .trajectories.jsonl)")
    _model_options(it)
    it.set_defaults(func=cmd_interactive)
