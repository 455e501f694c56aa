"""The SDK's log lines that a run keeps off INFO.

The SDK writes two INFO lines each time a child stream syncs one parent record, and a
METRIC line for every request: thousands in a backfill, which bury the lines that
matter (:mod:`tap_zoom_sms.progress` says at an interval where the run is instead).
"""

from __future__ import annotations

import logging

#: Lines of the SDK that come once per session synced.
PER_SESSION_LINES = ("Beginning sync of ", "Starting incremental sync of ")


class SessionNoise(logging.Filter):
    """Keeps the SDK's per-session lines ("Beginning sync of 'sms_messages' ...") off INFO.

    The SDK writes two INFO lines each time a child stream syncs one parent record:
    for the messages stream, two lines per session, thousands in a backfill. They
    pass at DEBUG (set ``TAP_ZOOM_SMS_LOGLEVEL=DEBUG``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop an INFO record that is one of those lines, unless DEBUG is on."""
        if record.levelno != logging.INFO or not str(record.msg).startswith(PER_SESSION_LINES):
            return True
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
