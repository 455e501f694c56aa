"""What Zoom sends is input: records made to match their schemas before anything reads them.

A record Zoom sends with a field of the wrong shape (an array sent as a string, a time
as a number, ``[null]`` among attachments) used to stop the tap with a traceback, on
every run, at the same record; a numeric string against an integer schema passed
through, for a strict target to refuse later, again on every run. So every record is
checked against its stream's schema as its page is parsed, before the tap itself reads
a field of it:

- a value of another type is coerced where that is unambiguous (``"2"`` or ``2.0`` for
  an integer, a number for a string, an epoch number for a date-time, ``"true"`` for a
  boolean); otherwise the field is set to null. Nothing in ``schemas/`` is widened;
- a record without its key (``message_id``, ...) cannot be placed: it is skipped;
- text is made valid for every target: a lone UTF-16 surrogate (half an emoji, from an
  SMS split into segments) cannot be encoded as UTF-8 at all, and PostgreSQL refuses
  U+0000 in text and jsonb; both become U+FFFD, unless ``repair_text`` is off.

Each kind of change is reported in one WARNING line the first time it is met in a
stream's field (a skipped record, every time), and counted in the run's last progress
line. ``malformed_records: fail`` ends the run instead, before the bookmark passes the
window that holds the record.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import math
import re
import threading
import typing as t
from dataclasses import dataclass, field

from tap_zoom_sms.errors import ZoomTapError
from tap_zoom_sms.windows import format_zoom_time, parse_time

#: The setting's values: repair what can be repaired and skip the rest, or fail the run.
POLICIES = ("repair", "fail")
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

_JSON_TYPES: dict[type, str] = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
}


class MalformedRecordError(ZoomTapError):
    """A record does not match its schema and ``malformed_records`` is ``fail``."""


def repair_text(text: str) -> str:
    """Return ``text`` with NUL and lone surrogates replaced by U+FFFD."""
    return _BAD_TEXT.sub(REPLACEMENT, text)


def page_has_bad_text(body: bytes) -> bool:
    """Say whether a page's raw JSON may hold text to repair (rare: the records are walked only then)."""
    return _BAD_TEXT_BYTES.search(body) is not None


@dataclass
class _Node:
    """One schema node, compiled: the JSON types it allows and what lies inside."""

    types: frozenset[str]
    date_time: bool = False
    properties: dict[str, _Node] = field(default_factory=dict)
    items: _Node | None = None


def _compile(schema: t.Mapping[str, t.Any]) -> _Node:
    declared = schema.get("type", ())
    types = frozenset([declared] if isinstance(declared, str) else declared)
    node = _Node(types, date_time=schema.get("format") == "date-time")
    node.properties = {name: _compile(sub) for name, sub in (schema.get("properties") or {}).items()}
    if isinstance(schema.get("items"), dict):
        node.items = _compile(schema["items"])
    return node


class _Unusable(Exception):  # noqa: N818 (a signal within this module, not an error)
    """A value that no declared type can take."""


def _coerce(value: t.Any, node: _Node) -> t.Any:  # noqa: PLR0911
    """Return ``value`` as one of ``node``'s types, if that is unambiguous; raise :class:`_Unusable` if not."""
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
    raise _Unusable


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
        raise _Unusable from None


def _is_date_time(text: str) -> bool:
    """Say whether ``text`` is an RFC 3339 date-time, what the schemas' ``date-time`` format means to a target."""
    if not _RFC3339.match(text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _as_date_time(text: str) -> str:
    """Return another notation of a time as a Zoom time string (taken as UTC without an offset, as Zoom's are).

    Ten digits or more are epoch seconds or milliseconds; fewer (``20240306``) a calendar date.
    """
    if text.isdigit() and len(text) >= _EPOCH_DIGITS:
        return _epoch_time(float(text))
    try:
        return format_zoom_time(parse_time(text))
    except (ValueError, TypeError, OverflowError):
        raise _Unusable from None


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


def _fits_check(node: _Node) -> Check:
    """Return a function that says whether a non-null value already matches ``node``, copying nothing.

    Built once per schema node: the common record, which matches, costs a type test per
    field and a loop per object or array.
    """
    if not node.types:
        return lambda _: True
    # exact types: a bool is not taken for an integer (type(True) is bool, not int)
    allowed = frozenset(py for kind in node.types for py in _PY_TYPES.get(kind, ()))
    props = [(key, _fits_check(sub)) for key, sub in node.properties.items()]
    items = _fits_check(node.items) if node.items is not None else None
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
            return not date_time or _is_date_time(value)
        elif kind is float:
            return not finite or math.isfinite(value)
        return True

    return fits


@dataclass(frozen=True)
class Problem:
    """One change made to a record, or the reason it was skipped."""

    field: str
    what: str  # "coerced", "nulled", "dropped from the array", "text repaired", "skipped"
    got: str  # the JSON type Zoom sent


class _Walk:
    """Conforms one record to a compiled schema, noting every change."""

    def __init__(self, *, text: bool) -> None:
        self.text = text
        self.problems: list[Problem] = []

    def value(self, value: t.Any, node: _Node, path: str) -> t.Any:
        if value is None:
            return None
        kind = _JSON_TYPES.get(type(value))
        if kind == "integer" and "integer" not in node.types and "number" in node.types:
            kind = "number"
        if kind in node.types:
            return self._inside(value, kind, node, path)
        if not node.types:  # not declared: any JSON value
            return self._inside(value, kind, _Node(frozenset()), path)
        try:
            coerced = _coerce(value, node)
        except _Unusable:
            self.problems.append(Problem(path, "nulled", kind or type(value).__name__))
            return None
        self.problems.append(Problem(path, "coerced", kind or type(value).__name__))
        return coerced

    def _inside(self, value: t.Any, kind: str | None, node: _Node, path: str) -> t.Any:
        if kind == "object":
            return self.object(value, node, path)
        if kind == "array":
            return self._array(value, node, path)
        if kind == "string":
            if node.date_time and not _is_date_time(value):
                try:
                    value = _as_date_time(value)
                except _Unusable:
                    self.problems.append(Problem(path, "nulled", "string (not a date-time)"))
                    return None
                self.problems.append(Problem(path, "coerced", "string (another notation of a date-time)"))
            return self._text(value, path)
        if kind == "number" and not math.isfinite(value):
            self.problems.append(Problem(path, "nulled", "number (not finite)"))
            return None
        return value

    def object(self, record: dict[str, t.Any], node: _Node, path: str) -> dict[str, t.Any]:
        out = {}
        for key, value in record.items():
            name = self._text(key, f"{path}{key}") if self.text and isinstance(key, str) else key
            sub = node.properties.get(key)
            out[name] = (
                self.value(value, sub, f"{path}{key}") if sub is not None else self._loose(value, f"{path}{key}")
            )
        return out

    def _array(self, items: list[t.Any], node: _Node, path: str) -> list[t.Any]:
        item_node = node.items or _Node(frozenset())
        out = []
        for item in items:
            conformed = self.value(item, item_node, f"{path}[]")
            if conformed is None and "null" not in item_node.types and item_node.types:
                self.problems.append(Problem(f"{path}[]", "dropped from the array", _kind(item)))
                continue
            out.append(conformed)
        return out

    def _loose(self, value: t.Any, path: str) -> t.Any:
        """A field the schema does not declare: passed through, its text repaired."""
        if not self.text:
            return value
        return self.value(value, _Node(frozenset()), path)

    def _text(self, text: str, path: str) -> str:
        if self.text and _BAD_TEXT.search(text):
            self.problems.append(Problem(path, "text repaired", "string"))
            return repair_text(text)
        return text


def _kind(value: t.Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class RecordChecks:
    """The run's record checks: every stream's records conformed, changes reported once, counted.

    Shared by every stream object of a run, from any thread.
    """

    def __init__(self, logger: logging.Logger, *, policy: str = "repair", text: bool = True) -> None:
        """Report to ``logger``; ``policy``: one of :data:`POLICIES`; ``text``: repair text."""
        self._logger = logger
        self._policy = policy
        self._text = text
        self._compiled: dict[str, _Node] = {}
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str, str, str]] = set()
        self.counts: collections.Counter[str] = collections.Counter()

    def text_to_repair(self, raw: bytes) -> bool:
        """Say whether the records of a page whose raw JSON is ``raw`` may hold text to repair."""
        return self._text and page_has_bad_text(raw)

    def conform(
        self, stream: str, schema: t.Mapping[str, t.Any], record: t.Any, where: str, *, text: bool = True
    ) -> dict[str, t.Any] | None:
        """Return ``record`` matching ``schema``, or None if it has no usable key (reported, counted).

        ``text``: whether to look for text to repair (:meth:`text_to_repair` of its
        page). ``where`` names the request the record came from, for the reports.
        """
        node = self._node(stream, schema)
        fast = type(record) is dict and not (text and self._text)
        if fast and self._fits(stream, node)(record) and missing_key(stream, record) is None:
            return record  # the common case: nothing to change
        if not isinstance(record, dict):
            self._skip(stream, Problem("(record)", "skipped", _kind(record)), where)
            return None
        walk = _Walk(text=text and self._text)
        conformed = walk.object(record, node, "")
        if (key := missing_key(stream, conformed)) is not None:
            self._skip(stream, Problem(key, "skipped", _kind(record.get(key)) if key in record else "none"), where)
            return None
        for problem in walk.problems:
            self._report(stream, problem, where)
        return conformed

    def skip(self, stream: str, key: str, got: t.Any, where: str) -> None:
        """Report a record of ``stream`` skipped for its ``key`` (a value of ``got``'s type), found by a stream."""
        self._skip(stream, Problem(key, "skipped", _kind(got)), where)

    def summary(self) -> str:
        """Return what the checks changed, for the run's last line ("" if nothing)."""
        with self._lock:
            counts = dict(self.counts)
        parts = [f"{counts[what]:,} {what}" for what in _SUMMARY if counts.get(what)]
        return "records from Zoom repaired: " + ", ".join(parts) if parts else ""

    def _fits(self, stream: str, node: _Node) -> Check:
        check = self._checks.get(stream)
        if check is None:
            check = self._checks[stream] = _fits_check(node)
        return check

    def _node(self, stream: str, schema: t.Mapping[str, t.Any]) -> _Node:
        node = self._compiled.get(stream)
        if node is None:
            node = self._compiled[stream] = _compile(schema)
        return node

    def _report(self, stream: str, problem: Problem, where: str) -> None:
        counted = _COUNTED[problem.what]
        with self._lock:
            self.counts[counted] += 1
            first = (stream, problem.field, problem.what, problem.got) not in self._warned
            self._warned.add((stream, problem.field, problem.what, problem.got))
        if self._policy == "fail" and problem.what != "text repaired":
            msg = f"{stream}: field {problem.field} is {problem.got}, not as schemas/{stream}.json declares ({where})"
            raise MalformedRecordError(msg + "; malformed_records: repair would have " + problem.what + " it")
        if first:
            self._logger.warning(
                "%s: field %s: %s (got %s) in %s; further such values in this field are counted, not logged",
                stream,
                problem.field,
                _DESCRIBE[problem.what],
                problem.got,
                where,
            )

    def _skip(self, stream: str, problem: Problem, where: str) -> None:
        if self._policy == "fail":
            msg = f"{stream}: a record without a usable {problem.field} (got {problem.got}) in {where}"
            raise MalformedRecordError(msg)
        with self._lock:
            self.counts["records skipped"] += 1
        self._logger.warning(
            "%s: skipped a record without a usable %s (got %s) in %s", stream, problem.field, problem.got, where
        )


#: The keys each stream's records must carry from Zoom (the tap adds the others).
KEYS_FROM_ZOOM: dict[str, tuple[str, ...]] = {
    "sms_sessions": ("session_id",),
    "sms_messages": ("message_id",),
    "attachments": ("id",),
    "contact_center_sms": ("engagement_id",),
}


def missing_key(stream: str, record: t.Mapping[str, t.Any]) -> str | None:
    """Return the first key of ``stream`` that ``record`` lacks as a non-empty string, or None if it can be placed."""
    for key in KEYS_FROM_ZOOM.get(stream, ()):
        value = record.get(key)
        if type(value) is not str or not value:
            return key
    return None


_COUNTED = {
    "coerced": "values coerced",
    "nulled": "values nulled",
    "dropped from the array": "array items dropped",
    "text repaired": "texts repaired",
}
_SUMMARY = ("records skipped", "values nulled", "array items dropped", "values coerced", "texts repaired")
_DESCRIBE = {
    "coerced": "converted to the type the schema declares",
    "nulled": "set to null (no unambiguous conversion to the declared type)",
    "dropped from the array": "an item that is not the declared type dropped",
    "text repaired": "NUL or a lone UTF-16 surrogate replaced by U+FFFD (repair_text)",
}
