"""Zoom's session lists as discovery reads them: by activity in a window, and what a miss is called."""

from __future__ import annotations

import typing as t

from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.windows import format_zoom_time

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.windows import Window

#: The lists that name the sessions that sent, or received, a message in a window.
ACTIVITY_FILTERS = ("sent_message_time", "received_message_time")


class DiscoveryFellShortError(Exception):
    """Zoom's activity lists missed a session in a month where it has messages."""

    def __init__(self, session_id: str, month: str, how: str) -> None:
        """Name the session, the month (``yyyy-mm``) and how the miss was seen."""
        self.session_id, self.month = session_id, month
        super().__init__(f"Zoom's activity lists missed session {session_id} in {month} ({how})")


def sessions_path(config: t.Mapping[str, t.Any]) -> str:
    """Return the session list the tap reads: the account's, or a user's when ``user_ids`` is set."""
    return "/phone/users/{user_id}/sms/sessions" if config.get("user_ids") else "/phone/sms/sessions"


def month_of(instant: dt.datetime | str) -> str:
    """Return the ``yyyy-mm`` of an instant (a datetime, or a Zoom time string)."""
    return (instant if isinstance(instant, str) else format_zoom_time(instant))[:7]


class SessionActivity(ZoomStream):
    """The sessions listed by ``filter_type`` in a window (no records emitted).

    Reads the same list as the sessions stream (the account's, or a user's), with
    ``filter_type`` set to one of :data:`ACTIVITY_FILTERS` (or ``last_message_time``,
    for the sample). It shares the sessions stream's schema and name, and never
    touches the state.
    """

    name = "sms_sessions"
    primary_keys = ("session_id",)
    replication_key = "last_access_time"
    records_key = "sms_sessions"
    paced_first = True  # the workers wait on its pages for sessions to fetch
    shows_progress = False  # the sessions stream's own windows are the run's progress

    def __init__(self, *args: t.Any, filter_type: str, **kwargs: t.Any) -> None:
        """List sessions by ``filter_type``."""
        super().__init__(*args, **kwargs)
        self._filter_type = filter_type
        self._window: Window | None = None

    @property
    def path(self) -> str:  # type: ignore[override]
        """Return the account's list, or a user's when ``user_ids`` is set."""
        return sessions_path(self.config)

    def windows(self, context: Context | None) -> t.Iterator[Window]:  # noqa: ARG002
        """Read the one window asked of :meth:`sessions`."""
        return iter([self._window] if self._window else [])

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for every session type, by this list's filter."""
        return {
            **super().get_url_params(context, next_page_token),
            "session_type": self.config["session_type"],
            "filter_type": self._filter_type,
        }

    def sessions(self, window: Window, context: Context | None) -> dict[str, dict[str, t.Any]]:
        """Return the sessions this filter lists in ``window``, by id."""
        self._window = window
        return {record["session_id"]: record for record in self.get_records(context)}

    def session_ids(self, window: Window, context: Context | None) -> set[str]:
        """Return the ids of the sessions this filter lists in ``window``."""
        return set(self.sessions(window, context))
