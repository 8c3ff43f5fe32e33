"""The ``gelab`` command. Each area registers its sub-commands from its own ``cli_*`` module."""

from __future__ import annotations

import argparse
import importlib
import sys

from gelab.params import ParamsError
from gelab.structure import EnvFileError

# Modules that define ``register(subparsers)``; one line per area.
COMMAND_MODULES = [
    "gelab.cli_env",
    "gelab.cli_data",
    "gelab.cli_train",
    "gelab.cli_eval",
    "gelab.cli_report",
]


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gelab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, EnvFileError, ParamsError, FileNotFoundError, ValueError) as exc:
        print(f"gelab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
