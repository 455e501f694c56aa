"""The errors the tap expects, each ending a run with one line that names the problem.

``tap_zoom_sms.tap.main`` prints these as ``tap-zoom-sms: error: <message>`` with a
non-zero exit and no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class ZoomTapError(Exception):
    """Base of the errors that end a run with a one-line message."""


class SettingsError(ZoomTapError):
    """A setting is missing or invalid; raised before any request is made."""


class AuthError(ZoomTapError, FatalAPIError):
    """Zoom refused the credentials or the access token it issued."""


class ZoomAPIError(ZoomTapError, FatalAPIError):
    """Zoom answered with an error that retrying will not fix."""


class PageTokenExpiredError(ZoomAPIError):
    """Zoom rejected a ``next_page_token`` as invalid or expired (they live 15 minutes).

    Not fatal: the stream restarts the window from its first page.
    """


class SessionGoneError(ZoomAPIError):
    """A session listed a moment ago no longer exists (retention deleted it).

    Not fatal: the stream skips the session with a warning.
    """


class DailyLimitError(ZoomTapError):
    """Zoom's daily request cap for a rate-limit label is reached.

    Requests on that label stop at once; streams on other labels finish; the run
    then ends with this error, its STATE at the last completed window.
    """

    def __init__(self, label: str, retry_after: str | None) -> None:
        """Remember the label and Zoom's ``Retry-After`` (the reset time), if it sent one."""
        self.label = label
        self.retry_after = retry_after
        reset = f"; it resets at {retry_after}" if retry_after else ""
        super().__init__(
            f"Zoom's daily limit for {label} requests was reached{reset}. "
            "The STATE emitted lets the next run resume where this one stopped"
        )


class StorageError(ZoomTapError):
    """Attachment files cannot be written where ``attachments_download_path`` says.

    Fatal: every later file would fail the same way. The STATE emitted is at the
    last completed window, so the next run downloads what this one could not.
    """
