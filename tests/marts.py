"""What the dbt marts should hold, computed in Python from the messages themselves.

The tests of the dbt models (tests/test_dbt.py, on PostgreSQL, and tests/test_demo.py, on DuckDB)
compare the marts with these figures, computed without SQL from the emulator's ground truth or
from the loaded rows.
"""

from __future__ import annotations

import collections
import datetime as dt
import typing as t

Message = dict[str, t.Any]


def first_responses(messages: t.Iterable[Message]) -> dict[str, int | None]:
    """Seconds from each customer turn to its reply, by the turn's message_id (None: no reply yet).

    A turn is an inbound message that opens its session or follows an outbound one; its reply is the
    next outbound message of the session. Messages are ordered by date_time, then message_id.
    """
    by_session: dict[str, list[Message]] = collections.defaultdict(list)
    for message in messages:
        by_session[message["session_id"]].append(message)
    out: dict[str, int | None] = {}
    for session in by_session.values():
        session.sort(key=lambda m: (m["date_time"], m["message_id"]))
        for i, message in enumerate(session):
            if message["direction"] != "In" or (i and session[i - 1]["direction"] == "In"):
                continue
            reply = next((m for m in session[i + 1 :] if m["direction"] == "Out"), None)
            out[message["message_id"]] = None if reply is None else _seconds(message, reply)
    return out


def _seconds(first: Message, then: Message) -> int:
    """Whole seconds between two messages' date_time (Zoom's ``...Z`` text, or a database's)."""

    def parse(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

    return int((parse(then["date_time"]) - parse(first["date_time"])).total_seconds())
