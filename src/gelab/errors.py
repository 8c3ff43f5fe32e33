"""The one error family of gelab: what the ``gelab`` command reports as a one-line message.

A :class:`GelabError` is a failure the user can cause or fix (a bad file, a bad parameter, a missing
input, a service that does not answer); the CLI prints it without a traceback and exits 2. Any
other exception is a bug in gelab and keeps its traceback.
"""

from __future__ import annotations


class GelabError(Exception):
    """A failure the user can cause or fix; printed as one line by the CLI."""


class InputError(GelabError, ValueError):
    """Bad input: a file, a field, an argument or a parameter; the message names which."""
