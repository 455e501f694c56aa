"""Records made to match their stream's schema, each change reported once and counted.

See :mod:`tap_zoom_sms.conform` for what is changed and why.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import typing as t
from dataclasses import dataclass

from tap_zoom_sms.conform.values import (
    Check,
    Node,
    Unusable,
    as_date_time,
    coerce,
    compile_schema,
    fits_check,
    has_bad_text,
    is_date_time,
    page_has_bad_text,
    repair_text,
)
from tap_zoom_sms.errors import ZoomTapError

#: The setting's values: repair what can be repaired and skip the rest, or fail the run.
POLICIES = ("repair", "fail")
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

    def value(self, value: t.Any, node: Node, path: str) -> t.Any:
        if value is None:
            return None
        kind = _JSON_TYPES.get(type(value))
        if kind == "integer" and "integer" not in node.types and "number" in node.types:
            kind = "number"
        if kind in node.types:
            return self._inside(value, kind, node, path)
        if not node.types:  # not declared: any JSON value
            return self._inside(value, kind, Node(frozenset()), path)
        try:
            coerced = coerce(value, node)
        except Unusable:
            self.problems.append(Problem(path, "nulled", kind or type(value).__name__))
            return None
        self.problems.append(Problem(path, "coerced", kind or type(value).__name__))
        return coerced

    def _inside(self, value: t.Any, kind: str | None, node: Node, path: str) -> t.Any:
        if kind == "object":
            return self.object(value, node, path)
        if kind == "array":
            return self._array(value, node, path)
        if kind == "string":
            if node.date_time and not is_date_time(value):
                try:
                    value = as_date_time(value)
                except Unusable:
                    self.problems.append(Problem(path, "nulled", "string (not a date-time)"))
                    return None
                self.problems.append(Problem(path, "coerced", "string (another notation of a date-time)"))
            return self._text(value, path)
        if kind == "number" and not math.isfinite(value):
            self.problems.append(Problem(path, "nulled", "number (not finite)"))
            return None
        return value

    def object(self, record: dict[str, t.Any], node: Node, path: str) -> dict[str, t.Any]:
        out = {}
        for key, value in record.items():
            name = self._text(key, f"{path}{key}") if self.text and isinstance(key, str) else key
            sub = node.properties.get(key)
            out[name] = (
                self.value(value, sub, f"{path}{key}") if sub is not None else self._loose(value, f"{path}{key}")
            )
        return out

    def _array(self, items: list[t.Any], node: Node, path: str) -> list[t.Any]:
        item_node = node.items or Node(frozenset())
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
        return self.value(value, Node(frozenset()), path)

    def _text(self, text: str, path: str) -> str:
        if self.text and has_bad_text(text):
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
        self._compiled: dict[str, Node] = {}
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

    def _fits(self, stream: str, node: Node) -> Check:
        check = self._checks.get(stream)
        if check is None:
            check = self._checks[stream] = fits_check(node)
        return check

    def _node(self, stream: str, schema: t.Mapping[str, t.Any]) -> Node:
        node = self._compiled.get(stream)
        if node is None:
            node = self._compiled[stream] = compile_schema(schema)
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
