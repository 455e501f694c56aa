"""Values made to match a JSON schema: coerced where that is unambiguous, and text every target can hold.

See :mod:`tap_zoom_sms.conform` for what is changed and why; :mod:`.records` applies it to records.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import typing as t
from dataclasses import dataclass, field

from tap_zoom_sms.windows import format_zoom_time, parse_time

#: What stands in for text that no target can take.
REPLACEMENT = "\ufffd"
#: Text no target can take: NUL, and a UTF-16 surrogate standing alone (a pair is one character in Python).
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
#: The same in a page's raw bytes: JSON escapes of NUL or a surrogate, a raw NUL, or UTF-8-encoded surrogates.
_BAD_TEXT_BYTES = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|\x00|\xed[\xa0-\xbf]")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([zZ]|[+-]\d\d:\d\d)\Z")
#: Digit strings this long in a time field are epoch times (1e9 seconds: 2001-09-09).
_EPOCH_DIGITS = 10
#: Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
_MILLISECONDS_FROM = 1e11


def repair_text(text: str) -> str:
    """Return ``text`` with NUL and lone surrogates replaced by U+FFFD."""
    return _BAD_TEXT.sub(REPLACEMENT, text)


def has_bad_text(text: str) -> bool:
    """Say whether ``text`` holds a NUL or a lone surrogate."""
    return _BAD_TEXT.search(text) is not None


def page_has_bad_text(body: bytes) -> bool:
    """Say whether a page's raw JSON may hold text to repair (rare: the records are walked only then)."""
    return _BAD_TEXT_BYTES.search(body) is not None


@dataclass
class Node:
    """One schema node, compiled: the JSON types it allows and what lies inside."""

    types: frozenset[str]
    date_time: bool = False
    properties: dict[str, Node] = field(default_factory=dict)
    items: Node | None = None


def compile_schema(schema: t.Mapping[str, t.Any]) -> Node:
    """Compile a JSON schema once, for every record of its stream."""
    declared = schema.get("type", ())
    types = frozenset([declared] if isinstance(declared, str) else declared)
    node = Node(types, date_time=schema.get("format") == "date-time")
    node.properties = {name: compile_schema(sub) for name, sub in (schema.get("properties") or {}).items()}
    if isinstance(schema.get("items"), dict):
        node.items = compile_schema(schema["items"])
    return node


class Unusable(Exception):  # noqa: N818 (a signal within the record checks, not an error)
    """A value that no declared type can take."""


def coerce(value: t.Any, node: Node) -> t.Any:  # noqa: PLR0911
    """Return ``value`` as one of ``node``'s types, if that is unambiguous; raise :class:`Unusable` if not."""
    types = node.types
    if "integer" in types and not isinstance(value, bool):
        number = _number(value)
        if number is not None and number.is_integer():
            return int(number)
    if "number" in types and not isinstance(value, bool):
        number = _number(value)
        if number is not None:
            return int(number) if number.is_integer() and isinstance(value, int) else number
    if "boolean" in types:
        if value in (0, 1) and not isinstance(value, float):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    if "string" in types:
        if node.date_time and not isinstance(value, bool) and (number := _number(value)) is not None:
            return _epoch_time(number)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)) and math.isfinite(value):
            return str(value)
    raise Unusable


def _number(value: t.Any) -> float | None:
    """Return a finite number from a number or a numeric string, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _epoch_time(number: float) -> str:
    """Return a Zoom time string for an epoch number (seconds, or milliseconds if that large)."""
    seconds = number / 1000 if abs(number) >= _MILLISECONDS_FROM else number
    try:
        return format_zoom_time(dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc))
    except (OverflowError, OSError, ValueError):
        raise Unusable from None


def is_date_time(text: str) -> bool:
    """Say whether ``text`` is an RFC 3339 date-time, what the schemas' ``date-time`` format means to a target."""
    if not _RFC3339.match(text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def as_date_time(text: str) -> str:
    """Return another notation of a time as a Zoom time string (taken as UTC without an offset, as Zoom's are).

    Ten digits or more are epoch seconds or milliseconds; fewer (``20240306``) a calendar date.
    """
    if text.isdigit() and len(text) >= _EPOCH_DIGITS:
        return _epoch_time(float(text))
    try:
        return format_zoom_time(parse_time(text))
    except (ValueError, TypeError, OverflowError):
        raise Unusable from None


Check = t.Callable[[t.Any], bool]
#: The Python types of decoded JSON that each JSON type allows (an integer is a number too).
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def fits_check(node: Node) -> Check:
    """Return a function that says whether a non-null value already matches ``node``, copying nothing.

    Built once per schema node: the common record, which matches, costs a type test per
    field and a loop per object or array.
    """
    if not node.types:
        return lambda _: True
    # exact types: a bool is not taken for an integer (type(True) is bool, not int)
    allowed = frozenset(py for kind in node.types for py in _PY_TYPES.get(kind, ()))
    props = [(key, fits_check(sub)) for key, sub in node.properties.items()]
    items = fits_check(node.items) if node.items is not None else None
    items_nullable = node.items is None or "null" in node.items.types or not node.items.types
    date_time, finite = node.date_time, "number" in node.types

    def fits(value: t.Any) -> bool:  # noqa: PLR0911 (a test per kind, flat for speed)
        kind = type(value)
        if kind not in allowed:
            return False
        if kind is dict:
            for key, check in props:
                sub = value.get(key)
                if sub is not None and not check(sub):
                    return False
        elif kind is list and items is not None:
            for item in value:
                if item is None:
                    if not items_nullable:
                        return False
                elif not items(item):
                    return False
        elif kind is str:
            return not date_time or is_date_time(value)
        elif kind is float:
            return not finite or math.isfinite(value)
        return True

    return fits
