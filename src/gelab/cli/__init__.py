"""The ``gelab`` command. Each area registers its sub-commands from its own module of this package.

A failure the user can cause (:class:`gelab.errors.GelabError`, a file that cannot be read) ends
with one line on stderr and exit status 2; ``--debug`` shows the traceback instead. Anything else is
a bug and keeps its traceback. Ctrl-C ends with "interrupted" and exit status 130, SIGTERM and SIGHUP
with "terminated" and 128 + the signal's number (143, 129), after the same clean-up
(:mod:`gelab.interrupts`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gelab.errors import MESSAGE_LIMIT, GelabError, quote, shorten
from gelab.interrupts import Terminated, stop_on_signals

# Modules that define ``register(subparsers)``; one line per area, in pipeline order.
COMMAND_MODULES = [
    "gelab.cli.env",
    "gelab.cli.data",
    "gelab.cli.train",
    "gelab.cli.eval",
    "gelab.cli.report",
    "gelab.cli.view",
    "gelab.cli.check",
]


def at_least(minimum: int):  # type: ignore[no-untyped-def]
    """An argparse ``type``: a whole number not below ``minimum`` (else a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {quote(text)}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gelab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with stop_on_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except (GelabError, OSError) as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            message = f"{exc.filename}: {exc.strerror or exc}"
        else:
            message = str(exc)
        message = message.replace("\r", "\\r").replace("\n", "\\n")  # one line, whatever a file held
        print(f"gelab {args.command}: error: {shorten(message, MESSAGE_LIMIT)}", file=sys.stderr)
        return 2
    except Terminated as exc:
        if args.debug:
            raise
        print(f"gelab {args.command}: terminated", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gelab {args.command}: interrupted", file=sys.stderr)
        return 130
