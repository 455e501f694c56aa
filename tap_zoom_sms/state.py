"""The STATE a run starts from: unwrapped, checked whole before any request, and never from the future.

The SDK takes whatever JSON it is given: a list, a flat form or a pasted STATE message
silently meant a full re-extract, and a bookmark that is not a date failed only once
its stream was reached, after other streams had written records. A bookmark in the
future (a hand-edited file, a machine with a wrong clock) is worse: every run until
that date extracts nothing, and what Zoom holds before it is never read. Each of these
ends the run here with one line that names the file and the problem.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_zoom_sms.errors import SettingsError
from tap_zoom_sms.settings import json_kind
from tap_zoom_sms.windows import format_zoom_time, parse_time

if t.TYPE_CHECKING:
    import logging

#: Keys whose values are instants the tap reads from.
TIME_KEYS = ("replication_key_value", "messages_since")
#: The keys of an entry of ``attachments.failed_downloads``.
FAILED_DOWNLOAD_KEYS = ("session_id", "message_id", "attachment_id")
#: How far a bookmark may lie ahead of Zoom's clock (the tap caps its bookmarks by
#: that clock, so only a small disagreement between clocks can put one there).
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


class StateError(SettingsError):
    """The state file cannot be resumed from."""


def checked_state(value: t.Any, source: str, streams: t.Collection[str], logger: logging.Logger) -> dict[str, t.Any]:
    """Return the Singer state in ``value`` (a STATE file's JSON), or raise :class:`StateError`.

    A whole STATE message (``{"type": "STATE", "value": ...}``) and the output of
    ``meltano state get`` (``{"singer_state": ...}``) are unwrapped, with a line
    that says so. ``source`` names the file in errors; ``streams`` are the tap's.
    """
    value = _unwrapped(value, source, logger)
    if not isinstance(value, dict):
        raise StateError(f'{source}: expected a JSON object {{"bookmarks": {{...}}}}, not {json_kind(value)}')
    extra = sorted(set(value) - {"bookmarks", "currently_syncing"})
    if extra:
        hint = ' (stream bookmarks belong under "bookmarks")' if set(extra) & set(streams) else ""
        keys = ", ".join(extra)
        raise StateError(f'{source}: not a Singer state: unexpected key(s) {keys}; expected {{"bookmarks": ...}}{hint}')
    bookmarks = value.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise StateError(f"{source}: bookmarks must be an object, not {json_kind(bookmarks)}")
    for stream, stream_state in bookmarks.items():
        where = f"{source}: bookmarks of {stream}"
        if not isinstance(stream_state, dict):
            raise StateError(f"{where} must be an object, not {json_kind(stream_state)}")
        if stream not in streams:
            logger.warning("%s: bookmarks of %r, a stream this tap does not have, are ignored", source, stream)
        _check_stream_state(stream_state, where)
    return value


def _unwrapped(value: t.Any, source: str, logger: logging.Logger) -> t.Any:
    if isinstance(value, dict) and value.get("type") == "STATE" and "value" in value:
        logger.info("%s holds a whole STATE message: resuming from its value", source)
        return value["value"]
    if isinstance(value, dict) and set(value) == {"singer_state"}:
        logger.info("%s holds Meltano's stored state: resuming from its singer_state", source)
        return value["singer_state"]
    return value


def _check_stream_state(stream_state: dict[str, t.Any], where: str) -> None:
    """Check one stream's (or partition's) bookmarks: instants that parse, lists of the right shape."""
    for key in TIME_KEYS:
        if key in stream_state and stream_state[key] is not None:
            _instant(stream_state[key], f"{where}: {key}")
    partitions = stream_state.get("partitions", [])
    if not isinstance(partitions, list) or not all(isinstance(p, dict) for p in partitions):
        raise StateError(f"{where}: partitions must be a list of objects")
    for partition in partitions:
        if not isinstance(partition.get("context"), dict):
            raise StateError(f"{where}: every partition needs a context object")
        _check_stream_state(partition, f"{where} (partition {partition['context']})")
    failed = stream_state.get("failed_downloads", [])
    if not isinstance(failed, list) or not all(
        isinstance(item, dict) and all(isinstance(item.get(k), str) for k in FAILED_DOWNLOAD_KEYS) for item in failed
    ):
        raise StateError(f"{where}: failed_downloads must be a list of {{{', '.join(FAILED_DOWNLOAD_KEYS)}}} objects")


def _instant(value: t.Any, where: str) -> dt.datetime:
    if not isinstance(value, str):
        raise StateError(f"{where} must be a date-time string, not {json_kind(value)} ({value!r})")
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        raise StateError(f"{where} {value!r} is not a date-time") from None


def future_bookmarks(state: t.Mapping[str, t.Any], now: dt.datetime) -> list[str]:
    """Return a description of every bookmark later than ``now`` plus :data:`FUTURE_TOLERANCE`."""
    found = []
    for stream, stream_state in (state.get("bookmarks") or {}).items():
        for entry in [stream_state, *stream_state.get("partitions", [])]:
            for key in TIME_KEYS:
                value = entry.get(key)
                if value and parse_time(value) > now + FUTURE_TOLERANCE:
                    context = f" (partition {entry['context']})" if "context" in entry else ""
                    found.append(f"{stream}{context} {key} {value}")
    return found


def future_error(found: list[str], now: dt.datetime, source: str) -> StateError:
    """Build the one-line refusal to resume from bookmarks in the future."""
    return StateError(
        f"{source}: bookmark(s) in the future: {'; '.join(found)} (Zoom's clock says {format_zoom_time(now)}). "
        "Resuming would skip everything before them; correct the state, or delete those bookmarks to "
        "extract from start_date"
    )
