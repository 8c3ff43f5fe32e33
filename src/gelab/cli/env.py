"""``gelab env generate | variant | import | export | inputs``: build and convert environment folders."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gelab.env.envdir import RenderSettings, load_environment, write_environment
from gelab.env.structure import STRUCTURE_FILE, load_structure
from gelab.errors import InputError, quote
from gelab.params import EnvParams, VariantParams, load_section, replace


def _env_params(args: argparse.Namespace) -> EnvParams:
    params = load_section(args.params, "env", EnvParams) if args.params else EnvParams()
    overrides = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.branching:
        try:
            overrides["branching"] = [int(b) for b in args.branching.split(",")]
        except ValueError:
            raise InputError(f"--branching: expected whole numbers separated by commas, got {quote(args.branching)}") \
                from None
    if args.model_image_size is not None:
        overrides["model_image_size"] = args.model_image_size
    return replace(params, "command line: env", **overrides)


def _use_inputs(args: argparse.Namespace) -> None:
    if getattr(args, "inputs", None):
        from gelab.env import icons

        icons.use_inputs(args.inputs)


def cmd_inputs(args: argparse.Namespace) -> int:
    """Copy this machine's font and emoji list into ``--out`` (the pipeline's data/emoji), unless there."""
    from gelab.env import icons

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, source in icons.source_files().items():
        dest = out / name
        if dest.exists() and not args.force:
            print(f"kept {dest}")
            continue
        shutil.copyfile(source, dest)
        print(f"{source} -> {dest}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from gelab.env.generate import generate

    _use_inputs(args)
    params = _env_params(args)
    structure, art = generate(params)
    settings = RenderSettings(params.model_image_size, tuple(params.title_box))  # type: ignore[arg-type]
    env = write_environment(args.out, structure, art, settings, workers=params.render_workers)
    print(f"wrote {env.root}: {len(structure.pages)} pages, "
          f"{sum(len(p.transitions) for p in structure.pages.values())} edges")
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    from gelab.env.variants import make_variant

    _use_inputs(args)
    env_params = load_section(args.params, "env", EnvParams) if args.params else EnvParams()
    vparams = load_section(args.params, "variants", VariantParams) if args.params else VariantParams()
    overrides = {k: v for k, v in (("seed", args.seed), ("noise_icons", args.noise_icons)) if v is not None}
    vparams = replace(vparams, "command line: variant", **overrides)
    base = load_environment(args.base)
    structure, art = make_variant(args.kind, base.structure, base.art, vparams.seed, env_params,
                                  noise_icons=vparams.noise_icons)
    env = write_environment(args.out, structure, art, base.settings, workers=env_params.render_workers)
    print(f"wrote {env.root}: Env-{args.kind.capitalize()} of {args.base}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from gelab.env.generate import assign_art

    _use_inputs(args)
    settings = RenderSettings(replace(EnvParams(), "command line: import",
                                      model_image_size=args.model_image_size).model_image_size)
    workers = replace(EnvParams(), "command line: import", render_workers=args.workers).render_workers
    structure = load_structure(args.file)
    names = sorted({e.name for p in structure.pages.values() for e in p.elements if e.type != "system"})
    art = assign_art(names, seed=args.seed)
    env = write_environment(args.out, structure, art, settings, workers=workers)
    print(f"imported {args.file} into {env.root}: {len(structure.pages)} pages")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    env = load_environment(args.env)  # validates before copying
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(env.root / STRUCTURE_FILE, out)
    print(f"exported {env.root / STRUCTURE_FILE} to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="generate, vary, import and export environments")
    env_sub = env.add_subparsers(dest="env_command", required=True)

    gen = env_sub.add_parser("generate", help="build Env-Base (or another tree) from parameters")
    gen.add_argument("--out", required=True, help="environment folder to write")
    gen.add_argument("--params", help="params.yaml (section 'env'); defaults reproduce Env-Base")
    gen.add_argument("--seed", type=int, help="override env.seed")
    gen.add_argument("--branching", help="override env.branching, e.g. 5,3,2,2,1,1")
    gen.add_argument("--model-image-size", type=int, help="override env.model_image_size")
    gen.add_argument("--inputs", help="folder with the font and emoji list to draw with (the pipeline: data/emoji); "
                     "default: the system's (GELAB_EMOJI_FONT, GELAB_EMOJI_TEST)")
    gen.set_defaults(func=cmd_generate)

    var = env_sub.add_parser("variant", help="build an OOD variant (image, name, position, noise)")
    var.add_argument("--base", required=True, help="base environment folder")
    var.add_argument("--kind", required=True, choices=["image", "name", "position", "noise"])
    var.add_argument("--out", required=True)
    var.add_argument("--params", help="params.yaml (sections 'env' and 'variants')")
    var.add_argument("--seed", type=int, help="override variants.seed")
    var.add_argument("--noise-icons", type=int, help="override variants.noise_icons")
    var.add_argument("--inputs", help="folder with the font and emoji list to draw with (the pipeline: data/emoji); "
                     "default: the system's (GELAB_EMOJI_FONT, GELAB_EMOJI_TEST)")
    var.set_defaults(func=cmd_variant)

    imp = env_sub.add_parser("import", help="render a released ui_structure.json with gelab's icons")
    imp.add_argument("file", help="ui_structure.json in the released schema")
    imp.add_argument("--out", required=True)
    imp.add_argument("--seed", type=int, default=0, help="seed of the name -> art assignment")
    imp.add_argument("--model-image-size", type=int, default=448)
    imp.add_argument("--workers", type=int, default=2)
    imp.add_argument("--inputs", help="folder with the font and emoji list to draw with (the pipeline: data/emoji); "
                     "default: the system's (GELAB_EMOJI_FONT, GELAB_EMOJI_TEST)")
    imp.set_defaults(func=cmd_import)

    inp = env_sub.add_parser("inputs", help="copy this machine's icon font and emoji list into a folder "
                             "(the pipeline's data/emoji, tracked by data.dvc)")
    inp.add_argument("--out", default="data/emoji", help="folder to fill (default: data/emoji)")
    inp.add_argument("--force", action="store_true", help="overwrite files already there")
    inp.set_defaults(func=cmd_inputs)

    exp = env_sub.add_parser("export", help="write an environment's ui_structure.json (released schema)")
    exp.add_argument("env", help="environment folder")
    exp.add_argument("--out", required=True)
    exp.set_defaults(func=cmd_export)
