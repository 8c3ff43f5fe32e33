"""The one error family of gelab: what the ``gelab`` command reports as a one-line message.

A :class:`GelabError` is a failure the user can cause or fix (a bad file, a bad parameter, a missing
input, a service that does not answer); the CLI prints it without a traceback and exits 2. Any
other exception is a bug in gelab and keeps its traceback.

A message never floods: it shows an input value through :func:`quote` (at most :data:`QUOTE_LIMIT`
characters of it), and the CLI cuts a whole message at :data:`MESSAGE_LIMIT` characters.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Iterator


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


# --- msgspec validation errors as one-line messages ------------------------------------------------

_JSON_NAMES = {dict: "a mapping", list: "a list", str: "str", int: "int", float: "float", bool: "bool"}


def _located(exc: Exception) -> tuple[str, list[str | int | None]]:
    """msgspec's message without its documented `` - at `$.path` `` suffix, and that path as parts: a
    field name, a list index, None for an entry of a mapping (which msgspec does not name), and
    :data:`_KEY` last where the suffix is `` - at `key` in `$.path` `` (a mapping's key)."""
    import re

    m = re.fullmatch(r"(?P<text>.*) - at `(?P<key>key` in `)?\$(?P<loc>[^`]*)`", str(exc), re.S)
    if m is None:
        return str(exc), []
    parts: list[str | int | None] = [name or (None if index == "..." else int(index))
                                     for name, index in re.findall(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]", m["loc"])]
    return m["text"], parts + [_KEY] if m["key"] else parts


_KEY = "`key`"  # the last part of a path that points at a mapping's key, not its value


def _shape(tp: Any) -> tuple[Any, Any]:
    """(the plain type, its msgspec.Meta or None) of a field type, ``Annotated`` unwrapped."""
    import msgspec

    if typing.get_origin(tp) is Annotated:
        base, *extra = typing.get_args(tp)
        return base, next((m for m in extra if isinstance(m, msgspec.Meta)), None)
    return tp, None


def _fields(tp: type) -> dict[str, Any]:
    """Encoded field name -> field type of a Struct."""
    import msgspec

    hints = typing.get_type_hints(tp, include_extras=True)
    return {f.encode_name: hints[f.name] for f in msgspec.structs.fields(tp)}


def _is_struct(tp: Any) -> bool:
    import msgspec

    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def fits(value: Any, tp: Any) -> bool:
    """``value`` converts to ``tp`` under msgspec's strict rules."""
    import msgspec

    try:
        msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError:
        return False
    return True


def _of_type(value: Any, base: Any) -> bool:
    """``value`` has the JSON type of ``base`` (an int is a float; a bool is neither)."""
    kind = dict if _is_struct(base) else typing.get_origin(base) or base
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def _bound(meta: Any, base: Any, value: Any) -> str | None:
    """The ``msgspec.Meta`` constraint ``value`` breaks, as "> 0.0" or "matching regex '...'", or None.

    Stated as msgspec states it: bounds in the field's type, and a strict bound of an integer as
    the inclusive one (``lt=2**32`` -> ``<= 4294967295``)."""
    import re

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        show = (lambda b: repr(float(b))) if base is float else repr
        for name, broken, text in (("gt", lambda b: not value > b, "> {}"), ("ge", lambda b: not value >= b, ">= {}"),
                                   ("lt", lambda b: not value < b, "< {}"), ("le", lambda b: not value <= b, "<= {}")):
            b = getattr(meta, name)
            if b is not None and broken(b):
                if base is int and name in ("gt", "lt"):
                    b, text = (b + 1, ">= {}") if name == "gt" else (b - 1, "<= {}")
                return text.format(show(b))
    if isinstance(value, str) and meta.pattern is not None and re.search(meta.pattern, value) is None:
        return f"matching regex {meta.pattern!r}"
    if isinstance(value, (str, list, dict)):
        if meta.min_length is not None and len(value) < meta.min_length:
            return f"of length >= {meta.min_length}"
        if meta.max_length is not None and len(value) > meta.max_length:
            return f"of length <= {meta.max_length}"
    return None


def validation_message(exc: Exception, raw: Any, tp: Any, where: str) -> str:
    """A ``msgspec.ValidationError`` from converting ``raw`` to ``tp`` as the project's one-line message,
    ``WHERE.dotted.key: what is wrong``: "unknown key", "missing key", "expected int, got 'x'" or
    "must be >= 0, got -1".

    Only the error's documented ``- at `$.path``` suffix is read from msgspec: the value and its
    type are found along that path and checked here (types, ``msgspec.Meta`` bounds, patterns and
    lengths). A problem of another kind keeps msgspec's own text."""
    text, parts = _located(exc)
    key, value = "", raw
    for part in parts:
        base, _ = _shape(tp)
        if part is _KEY:  # a key of the mapping here is not what it must be (a string)
            bad = next((k for k in value if not isinstance(k, str)), None) if isinstance(value, dict) else None
            return f"{where}{key}: key {quote(bad)} is not text"
        if isinstance(part, str):
            tp = _fields(base).get(part) if _is_struct(base) else None
            key, value = f"{key}.{part}", value.get(part) if isinstance(value, dict) else None
        elif isinstance(part, int):
            tp = typing.get_args(base)[0] if typing.get_args(base) else None
            key, value = f"{key}[{part}]", value[part] if isinstance(value, list) and part < len(value) else None
        else:  # an entry of a mapping: the first one that does not fit
            key_type, tp = typing.get_args(base) or (Any, Any)
            name, value = next(((k, v) for k, v in (value if isinstance(value, dict) else {}).items()
                                if not (fits(k, key_type) and fits(v, tp))), (None, None))
            key = f"{key}.{name}"
        if tp is None:
            break
    else:
        base, meta = _shape(tp)
        if _is_struct(base) and isinstance(value, dict):
            fields = _fields(base)
            unknown = next((k for k in value if k not in fields), None)
            if unknown is not None:
                return f"{where}{key}.{unknown}: unknown key"
            import msgspec

            required = [f.encode_name for f in msgspec.structs.fields(base) if f.required]
            missing = next((name for name in required if name not in value), None)
            if missing is not None:
                return f"{where}{key}.{missing}: missing key"
        elif not _of_type(value, base):
            kind = dict if _is_struct(base) else typing.get_origin(base) or base
            if kind in _JSON_NAMES:
                return f"{where}{key}: expected {_JSON_NAMES[kind]}, got {quote(value)}"
        elif meta is not None:
            bound = _bound(meta, base, value)
            if bound is not None:
                return f"{where}{key}: must be {bound}, got {quote(value)}"
    return f"{where}{key}: {text[0].lower()}{text[1:]}"
