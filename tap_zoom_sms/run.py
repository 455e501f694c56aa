"""What one run shares across its streams: built once per run, handed to every stream.

One authenticator (so one token for every stream and thread), one rate limiter per
Zoom label, Zoom's clock, the run's progress, the record checks, the downloader of
attachment files, the way to look one message up, the number of workers, and the
run's dates. The tap builds a :class:`RunServices` from its settings and gives it to
each stream it makes; no stream, client or discovery module reaches into the tap.

Each service is made when first asked for: ``--discover`` makes none of them, and a
run that downloads no files has no downloader.
"""

from __future__ import annotations

import threading
import typing as t
from functools import cached_property
from urllib.parse import urlsplit

from tap_zoom_sms.auth import StaticTokenAuthenticator, ZoomS2SAuthenticator
from tap_zoom_sms.concurrency import message_workers
from tap_zoom_sms.conform.records import RecordChecks
from tap_zoom_sms.downloads import Downloader, FileStore
from tap_zoom_sms.progress import Progress
from tap_zoom_sms.ratelimit import RateLimitedSession, RateLimiter
from tap_zoom_sms.windows import parse_time
from tap_zoom_sms.zoomclock import ZoomClock

if t.TYPE_CHECKING:
    import datetime as dt
    import logging

    import requests

S = t.TypeVar("S")
#: How often a reader waiting for the run's first answer checks whether it was stopped.
ANSWER_POLL_SECONDS = 0.1


class StreamFactory(t.Protocol):
    """Makes a new stream object of the run (for a worker thread: stream objects are not thread-safe)."""

    def __call__(self, stream_type: type[S], /, **kwargs: t.Any) -> S:
        """Return a new ``stream_type`` of this run, given ``kwargs``."""


class MessageFetcher(t.Protocol):
    """A stream that can GET one message (see :class:`MessageLookup`)."""

    def fetch_message(self, session_id: str, message_id: str) -> dict[str, t.Any] | None:
        """Return the message (fresh download URLs), or None if it no longer exists."""


class RunServices:
    """The services and settings of one run (see the module)."""

    def __init__(
        self,
        config: t.Mapping[str, t.Any],
        logger: logging.Logger,
        *,
        new_stream: StreamFactory,
        new_message_fetcher: t.Callable[[], MessageFetcher],
        files_wanted: t.Callable[[], bool],
    ) -> None:
        """Serve a run of ``config``.

        ``new_stream`` makes stream objects for worker threads, ``new_message_fetcher``
        the one :attr:`message_lookup` uses in each thread, and ``files_wanted`` says
        whether attachment files are to be downloaded (their stream is selected).
        """
        self.config = config
        self.logger = logger
        self.new_stream = new_stream
        self._new_message_fetcher = new_message_fetcher
        self._files_wanted = files_wanted
        #: set once Zoom has answered a data request with success: the token and URLs work
        self.answered = threading.Event()

    @cached_property
    def start_date(self) -> dt.datetime:
        """Return start_date as an aware UTC datetime."""
        return parse_time(self.config["start_date"])

    @cached_property
    def end_date(self) -> dt.datetime | None:
        """Return end_date as an aware UTC datetime, or None for "up to now"."""
        value = self.config.get("end_date")
        return parse_time(value) if value else None

    @cached_property
    def clock(self) -> ZoomClock:
        """Return Zoom's clock, as the token endpoint's Date headers show it."""
        return ZoomClock()

    @cached_property
    def auth(self) -> ZoomS2SAuthenticator | StaticTokenAuthenticator:
        """Return the one authenticator of the run (and so one token for all streams)."""
        if self.config.get("access_token"):
            return StaticTokenAuthenticator(self.config["access_token"])
        return ZoomS2SAuthenticator(
            account_id=self.config["account_id"],
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            auth_endpoint=self.config["oauth_url"],
            timeout=float(self.config["request_timeout"]),
            on_response=self.clock.observe,
        )

    @cached_property
    def limiters(self) -> dict[str, RateLimiter]:
        """Return one limiter per Zoom rate-limit label, shared by every stream."""
        return {
            "Medium": RateLimiter(self.config["medium_requests_per_second"]),
            "Heavy": RateLimiter(self.config["heavy_requests_per_second"]),
        }

    def session(self, label: str, *, first: bool = False) -> RateLimitedSession:
        """Return a new HTTP session paced by ``label``'s limiter (``first``: ahead of those waiting)."""
        return RateLimitedSession(self.limiters[label], self._response, first=first)

    def build(self) -> None:
        """Make the services threads share, before any thread starts (``cached_property`` has no lock on 3.12+)."""
        _ = (self.auth, self.limiters, self.progress, self.record_checks, self.workers, self.message_lookup)
        _ = self.downloader  # None unless files are asked for

    def await_answer(self, stopped: t.Callable[[], bool]) -> bool:
        """Wait until Zoom has answered a data request of the run with success; False if ``stopped()`` first.

        Contact Center's list, read in the background beside the Phone streams, waits here
        before its first request: it is on the Heavy label, whose daily cap a refused token
        or a wrong URL should not spend on a burst of requests. The Phone streams' lists
        read ahead do not wait (see :mod:`tap_zoom_sms.readahead.windows`): waiting would
        idle the limit for the round trip of the run's first answer.
        """
        while not self.answered.wait(ANSWER_POLL_SECONDS):
            if stopped():
                return False
        return not stopped()

    def _response(self, response: requests.Response) -> None:
        """Count every response in the progress; note the first success (see :attr:`answered`)."""
        self.progress.response(response)
        if response.ok and not self.answered.is_set():
            self.answered.set()

    @cached_property
    def progress(self) -> Progress:
        """Return the run's progress: counters every stream feeds, and its INFO lines."""
        limits = {
            "Medium": float(self.config["medium_requests_per_second"]),
            "Heavy": float(self.config["heavy_requests_per_second"]),
        }
        return Progress(self.logger, limits)

    @cached_property
    def record_checks(self) -> RecordChecks:
        """Return the checks that make every record match its schema (see :mod:`tap_zoom_sms.conform`)."""
        return RecordChecks(
            self.logger,
            policy=self.config.get("malformed_records", "repair"),
            text=self.config.get("repair_text", True),
        )

    @cached_property
    def workers(self) -> int:
        """Return the sessions whose messages are fetched at once (see :mod:`tap_zoom_sms.concurrency`)."""
        return message_workers(self.config)

    @cached_property
    def downloader(self) -> Downloader | None:
        """Return the downloader of attachment files, or None if files are not asked for.

        Files are downloaded when ``attachments_download_path`` is set and the
        attachments stream is selected; downloads share the Medium limiter.
        """
        path = self.config.get("attachments_download_path")
        if not path or not self._files_wanted():
            return None
        return Downloader(
            FileStore(path),
            lambda: self.session("Medium"),
            authenticate=self.auth.authenticate_request,
            timeout=float(self.config["request_timeout"]),
            logger=self.logger,
            api_host=urlsplit(self.config["api_url"]).hostname or "",
            workers=self.workers,
        )

    @cached_property
    def message_lookup(self) -> MessageLookup:
        """Return the way to GET one message from any thread (to refresh download URLs)."""
        return MessageLookup(self._new_message_fetcher)


class MessageLookup:
    """GET one message from any thread, each thread with its own stream object.

    Download URLs are refreshed from the download pool's threads; stream objects
    are not thread-safe, so none is shared between threads.
    """

    def __init__(self, new_fetcher: t.Callable[[], MessageFetcher]) -> None:
        """Look messages up with a fetcher per thread, made by ``new_fetcher``."""
        self._new_fetcher = new_fetcher
        self._local = threading.local()

    def __call__(self, session_id: str, message_id: str) -> dict[str, t.Any] | None:
        """Return the message (fresh download URLs), or None if it no longer exists."""
        fetcher = getattr(self._local, "fetcher", None)
        if fetcher is None:
            fetcher = self._local.fetcher = self._new_fetcher()
        return fetcher.fetch_message(session_id, message_id)
