"""The one error family of gelab: what the ``gelab`` command reports as a one-line message.

A :class:`GelabError` is a failure the user can cause or fix (a bad file, a bad parameter, a missing
input, a service that does not answer); the CLI prints it without a traceback and exits 2. Any
other exception is a bug in gelab and keeps its traceback.

A message never floods: it shows an input value through :func:`quote` (at most :data:`QUOTE_LIMIT`
characters of it), and the CLI cuts a whole message at :data:`MESSAGE_LIMIT` characters.
"""

from __future__ import annotations

from typing import Iterator


class GelabError(Exception):
    """A failure the user can cause or fix; printed as one line by the CLI."""


class InputError(GelabError, ValueError):
    """Bad input: a file, a field, an argument or a parameter; the message names which."""


QUOTE_LIMIT = 200  # characters of an input value an error message shows
MESSAGE_LIMIT = 1000  # characters of a whole one-line message


def shorten(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters, an ellipsis and its size when it is longer."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _size(value: object) -> str:
    for kind, unit in ((str, "char"), (bytes, "byte"), (dict, "key"), (list, "item"), (tuple, "item")):
        if isinstance(value, kind):
            n = len(value)  # type: ignore[arg-type]
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{len(repr(value))} chars"


def _repr_parts(value: object, limit: int) -> Iterator[str]:
    """``repr(value)`` in pieces, so that a huge value (or an alias-shared, exponentially large one) is
    never rendered whole: the caller stops reading after ``limit`` characters."""
    if type(value) in (str, bytes) and len(value) > limit:  # type: ignore[arg-type]
        quotes = ["'", '"'] if type(value) is str else [b"'", b'"']
        # its head, plus the quote characters the whole value has: repr picks its quotes from them
        yield repr(value[:limit] + type(value)().join(q for q in quotes if q in value))  # type: ignore
    elif type(value) is dict:
        yield "{"
        for i, (key, item) in enumerate(value.items()):  # type: ignore[attr-defined]
            yield ", " if i else ""
            yield from _repr_parts(key, limit)
            yield ": "
            yield from _repr_parts(item, limit)
        yield "}"
    elif type(value) in (list, tuple):
        is_list = type(value) is list
        yield "[" if is_list else "("
        for i, item in enumerate(value):  # type: ignore[arg-type]
            yield ", " if i else ""
            yield from _repr_parts(item, limit)
        yield "]" if is_list else ",)" if len(value) == 1 else ")"  # type: ignore[arg-type]
    else:
        yield repr(value)


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """How an error message shows an input value: ``repr(value)``, cut after ``limit`` characters with
    an ellipsis and the value's size (``'xxxx… (5000 chars)``, ``[[1, 2, … (9 items)``)."""
    text = ""
    for part in _repr_parts(value, limit):
        text += part
        if len(text) > limit:
            return f"{text[:limit]}… ({_size(value)})"
    return text
