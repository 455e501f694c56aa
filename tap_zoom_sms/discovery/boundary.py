"""A message stamped on the instant two months share, written once though discovery reads each month apart."""

from __future__ import annotations

import typing as t


class BoundaryMessages:
    """Writes a message stamped on the instant two windows share once, though discovery reads each month apart.

    Windows share their boundary instant (bounds are taken as inclusive), so a
    message stamped exactly at 00:00:00 on the 1st is read with the month before and
    with its own. The exhaustive walk reads both windows of a session in one sync and
    drops the repeat there; discovery reads them in separate syncs, so the ids of the
    messages stamped on the latest boundaries are kept here (a few at most).
    """

    def __init__(self) -> None:
        """Start with no boundary seen."""
        self._seen: dict[str, set[str]] = {}

    def first_sighting(self, message: t.Mapping[str, t.Any]) -> bool:
        """Say whether ``message`` is to be written: not a repeat of one stamped on a month's first instant."""
        when = str(message.get("date_time") or "")
        if not when.endswith("-01T00:00:00Z"):
            return True
        seen = self._seen.setdefault(when, set())
        if len(self._seen) > 2:  # windows are read in order: older boundaries cannot come again
            del self._seen[min(self._seen)]
        if message.get("message_id") in seen:
            return False
        seen.add(str(message.get("message_id")))
        return True
