"""Zoom Contact Center SMS engagements."""

from __future__ import annotations

import datetime as dt
import typing as t

from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.windows import month_windows, parse_time

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.windows import Window


class ContactCenterSmsStream(ZoomStream):
    """GET /contact_center/sms: engagements, by start time.

    Zoom publishes an engagement only once it is completed, so one that started
    before the last run can appear after it: each run re-reads
    ``contact_center_lookback_hours`` before its bookmark.
    """

    name = "contact_center_sms"
    path = "/contact_center/sms"
    primary_keys = ("engagement_id",)
    replication_key = "start_time"
    records_key = "sms"
    rate_limit_label = "Heavy"
    starts_early = True  # read beside the Phone streams (the Heavy limit is its own), and synced last

    def windows(self, context: Context | None) -> t.Iterator[Window]:  # noqa: ARG002
        """Read from the bookmark less the lookback (not before start_date) to the end."""
        start = self.services.start_date
        bookmark = self.stream_state.get("replication_key_value")
        if bookmark:
            lookback = dt.timedelta(hours=self.config["contact_center_lookback_hours"])
            start = max(start, parse_time(bookmark) - lookback)
        return month_windows(start, self.services.end_date)

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:  # noqa: ARG002
        """Advance the bookmark to what ``window`` covered."""
        self.commit_bookmark(covered)
