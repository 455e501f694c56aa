"""The STATE a run starts from: unwrapped, checked whole before any request, kept small, never from the future.

The SDK takes whatever JSON it is given: a list, a flat form or a pasted STATE message
silently meant a full re-extract, and a bookmark that is not a date failed only once
its stream was reached, after other streams had written records. A bookmark in the
future (a hand-edited file, a machine with a wrong clock) is worse: every run until
that date extracts nothing, and what Zoom holds before it is never read. Each of these
ends the run here with one line that names the file and the problem.

The SDK also carries every part of a state forward, used or not, and writes it whole
in every STATE message: a state of an older layout, with a bookmark per session of
``sms_messages``, made every STATE message of a run 25 MB. What this tap no longer
uses is dropped here, with one INFO line saying how much (see :func:`usable_state`).
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from dataclasses import dataclass, field

from tap_zoom_sms.errors import SettingsError
from tap_zoom_sms.settings.checks import EARLIEST_DATE
from tap_zoom_sms.settings.sources import json_kind
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
#: Partitions kept of users no longer in ``user_ids`` (those read last): a user put back
#: resumes from their bookmark; more than this many is not a list someone trimmed.
IDLE_USERS_KEPT = 100


class StateError(SettingsError):
    """The state file cannot be resumed from."""


@dataclass(frozen=True)
class Layout:
    """What of a state this tap uses: its streams, and the one with a partition per user."""

    streams: frozenset[str]
    #: the stream read per user of ``user_ids``, one partition (``{"user_id": ...}``) each
    per_user: str
    #: the users of ``user_ids`` in this run's settings
    users: frozenset[str]


@dataclass
class _Dropped:
    """What was left out of a state, in words, for the one INFO line."""

    parts: list[str] = field(default_factory=list)

    def stream(self, name: str) -> None:
        """Note the bookmarks of stream ``name`` dropped."""
        self.parts.append(f"the bookmarks of {name}")

    def partitions(self, count: int, which: str) -> None:
        """Note ``count`` partitions dropped, ``which`` saying which (e.g. "of sms_messages")."""
        if count:
            self.parts.append(f"{count:,} partition{'' if count == 1 else 's'} {which}")


def usable_state(value: t.Any, source: str, layout: Layout, logger: logging.Logger) -> dict[str, t.Any]:
    """Return the Singer state in ``value`` (a STATE file's JSON) to resume from, or raise :class:`StateError`.

    A whole STATE message (``{"type": "STATE", "value": ...}``) and the output of
    ``meltano state get`` (``{"singer_state": ...}``) are unwrapped, with a line
    that says so. ``source`` names the file in errors. What the tap no longer uses is
    dropped before the rest is checked: the bookmarks of streams it does not have,
    partitions of streams that have none (``sms_messages`` had one per session), those
    of ``sms_sessions`` not keyed by user, and those of users no longer in
    ``user_ids`` beyond the :data:`IDLE_USERS_KEPT` read last. An instant before
    :data:`~tap_zoom_sms.settings.checks.EARLIEST_DATE` (``0001-01-01T00:00:00Z``, as some tools
    write "no date") is read as that date, which means from start_date (it cannot be
    earlier), and leaves the bookmark arithmetic within the years a date can hold.
    """
    value = _unwrapped(value, source, logger)
    bookmarks = _bookmarks(value, source, layout.streams)
    dropped = _Dropped()
    kept: dict[str, t.Any] = {}
    for stream, stream_state in bookmarks.items():
        where = f"{source}: bookmarks of {stream}"
        if not isinstance(stream_state, dict):
            raise StateError(f"{where} must be an object, not {json_kind(stream_state)}")
        if stream not in layout.streams:
            logger.warning("%s: bookmarks of %r, a stream this tap does not have, are dropped", source, stream)
            dropped.stream(stream)
            continue
        kept[stream] = _stream_state(stream, stream_state, where, layout=layout, dropped=dropped, logger=logger)
    state = {**value, "bookmarks": kept} if "bookmarks" in value else value
    if dropped.parts:
        logger.info(
            "%s: dropped what this tap no longer uses (%s): %s instead of %s",
            source,
            "; ".join(dropped.parts),
            _size(state),
            _size(value),
        )
    return state


def _bookmarks(value: t.Any, source: str, streams: frozenset[str]) -> dict[str, t.Any]:
    """Return the bookmarks of a Singer state, or raise :class:`StateError` if ``value`` is not one."""
    if not isinstance(value, dict):
        raise StateError(f'{source}: expected a JSON object {{"bookmarks": {{...}}}}, not {json_kind(value)}')
    extra = sorted(set(value) - {"bookmarks", "currently_syncing"})
    if extra:
        hint = ' (stream bookmarks belong under "bookmarks")' if set(extra) & streams else ""
        keys = ", ".join(extra)
        raise StateError(f'{source}: not a Singer state: unexpected key(s) {keys}; expected {{"bookmarks": ...}}{hint}')
    bookmarks = value.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise StateError(f"{source}: bookmarks must be an object, not {json_kind(bookmarks)}")
    return bookmarks


def _size(state: dict[str, t.Any]) -> str:
    """Say how large ``state`` is in a STATE message."""
    size = len(json.dumps(state, separators=(",", ":")))
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def _stream_state(
    stream: str,
    stream_state: dict[str, t.Any],
    where: str,
    *,
    layout: Layout,
    dropped: _Dropped,
    logger: logging.Logger,
) -> dict[str, t.Any]:
    """Return one stream's state, checked, without the partitions the tap does not read."""
    kept = _checked_entry({k: v for k, v in stream_state.items() if k != "partitions"}, where, logger)
    partitions = stream_state.get("partitions")
    if partitions is None:
        return kept
    if stream != layout.per_user:
        dropped.partitions(len(partitions) if isinstance(partitions, list) else 1, f"of {stream}")
        return kept
    if not isinstance(partitions, list) or not all(isinstance(p, dict) for p in partitions):
        raise StateError(f"{where}: partitions must be a list of objects")
    if not all(isinstance(p.get("context"), dict) for p in partitions):
        raise StateError(f"{where}: every partition needs a context object")
    users = _user_partitions(partitions, stream, layout.users, dropped)
    seen: set[str] = set()
    for partition in users:
        user = partition["context"]["user_id"]
        if user in seen:  # the SDK would stop at it mid-run, after other streams' records
            raise StateError(f"{where}: the partition {partition['context']} is listed twice")
        seen.add(user)
    kept["partitions"] = [_checked_entry(p, f"{where} (partition {p['context']})", logger) for p in users]
    return kept


def _user_partitions(
    partitions: list[dict[str, t.Any]], stream: str, users: frozenset[str], dropped: _Dropped
) -> list[dict[str, t.Any]]:
    """Return the partitions of users: all of those in ``user_ids``, and the others read last.

    The others are kept because a user put back in ``user_ids`` resumes from their
    bookmark; past :data:`IDLE_USERS_KEPT` of them, the rest (the oldest bookmarks) go,
    and such a user would be read from start_date again (emitted again, nothing lost).
    """
    of_users = [p for p in partitions if set(p["context"]) == {"user_id"} and isinstance(p["context"]["user_id"], str)]
    dropped.partitions(len(partitions) - len(of_users), f"of {stream} not keyed by user_id")
    idle = [p for p in of_users if p["context"]["user_id"] not in users]
    if len(idle) <= IDLE_USERS_KEPT:
        return of_users
    latest = sorted(idle, key=lambda p: str(p.get("replication_key_value") or ""), reverse=True)
    gone = {id(p) for p in latest[IDLE_USERS_KEPT:]}
    dropped.partitions(len(gone), f"of {stream} of users not in user_ids (the {IDLE_USERS_KEPT} read last are kept)")
    return [p for p in of_users if id(p) not in gone]


def _unwrapped(value: t.Any, source: str, logger: logging.Logger) -> t.Any:
    if isinstance(value, dict) and value.get("type") == "STATE" and "value" in value:
        logger.info("%s holds a whole STATE message: resuming from its value", source)
        return value["value"]
    if isinstance(value, dict) and set(value) == {"singer_state"}:
        logger.info("%s holds Meltano's stored state: resuming from its singer_state", source)
        return value["singer_state"]
    return value


def _checked_entry(entry: dict[str, t.Any], where: str, logger: logging.Logger) -> dict[str, t.Any]:
    """Check one stream's (or partition's) bookmarks: instants that parse, a list of the right shape.

    Returns the entry with any instant before the earliest start_date read as that date.
    """
    entry = dict(entry)
    for key in TIME_KEYS:
        if key in entry and entry[key] is not None:
            instant = _instant(entry[key], f"{where}: {key}")
            if instant < EARLIEST_DATE:
                earliest = format_zoom_time(EARLIEST_DATE)
                logger.info(
                    "%s: %s %s is before any start_date: read as %s, that is from start_date",
                    where,
                    key,
                    entry[key],
                    earliest,
                )
                entry[key] = earliest
    failed = entry.get("failed_downloads", [])
    if not isinstance(failed, list) or not all(
        isinstance(item, dict) and all(isinstance(item.get(k), str) for k in FAILED_DOWNLOAD_KEYS) for item in failed
    ):
        raise StateError(f"{where}: failed_downloads must be a list of {{{', '.join(FAILED_DOWNLOAD_KEYS)}}} objects")
    return entry


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
