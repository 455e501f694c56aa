"""The base of every Zoom list stream: auth, pacing, windows, paging, errors and bookmarks."""

from __future__ import annotations

import itertools
import typing as t
from functools import cached_property, partial
from http import HTTPStatus
from urllib.parse import urlsplit

import requests
from singer_sdk import RESTStream
from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import retries
from tap_zoom_sms.basestream import BaseStream
from tap_zoom_sms.errors import AuthError, DailyLimitError, PageTokenExpiredError, ZoomAPIError
from tap_zoom_sms.pagination import WINDOW_READ, WindowDone, WindowPage, WindowPaginator, next_page_token
from tap_zoom_sms.readahead.background import ListInBackground
from tap_zoom_sms.readahead.windows import WindowsAhead
from tap_zoom_sms.responses import (
    PAGE_TOKEN_CODES,
    MalformedResponseError,
    describe_error,
    error_fields,
    is_page,
    page_fault,
    take_as_read,
    zoom_json,
)
from tap_zoom_sms.windows import Window, WindowDedupe, format_zoom_time

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.auth import StaticTokenAuthenticator, ZoomS2SAuthenticator

#: Restarts of one window after Zoom rejects its page token, before giving up.
MAX_WINDOW_RESTARTS = 3
#: Reads again of a page whose records array is null, missing or not an array (or whose page
#: token is not a string), before it is taken as Zoom may mean it: no records (one warning).
#: Each is a retry of the request, within its budget of faults (``retries.MAX_FAULT_TRIES``).
MALFORMED_PAGE_REREADS = 3


class ZoomStream(BaseStream, RESTStream[WindowPage]):
    """A Zoom list endpoint read window by window, page by page.

    Subclasses say which windows to read (:meth:`windows`), where the records are in
    a page (``records_key``) and which rate-limit label the endpoint has; this class
    does the rest. Bookmarks advance only when a whole window has been read
    (:meth:`commit_bookmark`), never per record, so a STATE emitted at any moment
    is safe to resume from.
    """

    #: Zoom's rate-limit label of the endpoint: "Medium" or "Heavy".
    rate_limit_label: t.ClassVar[str] = "Medium"
    #: The key of the records' array in a page.
    records_key: t.ClassVar[str]
    #: Whether the run's progress line follows this stream's windows (a top-level stream's).
    shows_progress: t.ClassVar[bool] = True
    #: Whether :data:`~tap_zoom_sms.pagination.WINDOW_READ` follows the last record of each window.
    marks_windows: t.ClassVar[bool] = False
    #: How many windows after the one being written have their list read ahead (0: none).
    windows_ahead: t.ClassVar[int] = 0
    #: Whether its lists are read from the run's start, while the streams before it sync (see start_early).
    starts_early: t.ClassVar[bool] = False
    _early: ListInBackground | None = None
    #: Whether its requests go ahead of those waiting at the limiter: a list whose pages the
    #: workers' next fetches depend on (see :class:`tap_zoom_sms.ratelimit.RateLimiter`).
    paced_first: t.ClassVar[bool] = False

    _paginator: WindowPaginator
    _windows: t.Iterator[Window]
    _on_window_done: WindowDone
    #: the window whose records are being handed over
    current_window: Window
    _what = "Zoom's list"
    _unauthorized_streak = 0
    #: the URL of the page last found malformed, and how many times in a row it was
    _malformed: tuple[str, int] | None = None

    @property
    def url_base(self) -> str:
        """Return the API base, e.g. https://api.zoom.us/v2."""
        return str(self.config["api_url"]).rstrip("/")

    @property
    def authenticator(self) -> ZoomS2SAuthenticator | StaticTokenAuthenticator:
        """Return the tap's one authenticator, so every stream shares one token."""
        return self.services.auth

    @cached_property
    def requests_session(self) -> requests.Session:
        """Return a session paced by the limiter of this endpoint's label."""
        return self.services.session(self.rate_limit_label, first=self.paced_first)

    @property
    def timeout(self) -> int:
        """Return the per-request timeout in seconds."""
        return int(self.config["request_timeout"])

    def request_decorator(self, func: t.Callable[..., requests.Response]) -> t.Callable[..., requests.Response]:
        """Retry transient failures by the rules of :data:`~tap_zoom_sms.retries.API`.

        Replaces the SDK's five tries with backoff: 429s wait as ``Retry-After`` says
        and keep trying for minutes; the daily cap closes the label at once.
        """
        label = self.rate_limit_label

        def send(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                return retries.call(
                    lambda: func(prepared_request, context), retries.API, f"GET {self.path}", self.logger, label
                )
            except DailyLimitError as limit:
                self.services.limiters[label].close(limit)
                raise

        return send

    def windows(self, context: Context | None) -> t.Iterator[Window]:
        """Return the windows to read for ``context``, oldest first."""
        raise NotImplementedError

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:
        """Run after every record of ``window`` has been processed (default: nothing).

        ``covered`` is what a bookmark may claim: the window's end, capped by Zoom's
        clock when it answered the window's first page.
        """

    def get_new_paginator(self) -> WindowPaginator:
        """Return a paginator over the windows :meth:`get_records` prepared."""
        self._paginator = WindowPaginator(self._windows, self._on_window_done, self._what)
        return self._paginator

    def get_url_params(
        self,
        context: Context | None,  # noqa: ARG002
        next_page_token: WindowPage | None,
    ) -> dict[str, t.Any]:
        """Return the window's ``from``/``to``, the page size and Zoom's page token."""
        assert next_page_token is not None  # noqa: S101 (the paginator always has a page)
        params: dict[str, t.Any] = {
            "page_size": self.config["page_size"],
            **next_page_token.window.params(),
        }
        if next_page_token.next_page_token:
            params["next_page_token"] = next_page_token.next_page_token
        return params

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read every window, in order; a record on the boundary two windows share is emitted once.

        With ``windows_ahead`` (and workers), the next windows' lists are read while the
        current one is written (see :mod:`tap_zoom_sms.readahead.windows`); a stream that
        started early takes what its background reading holds (:meth:`start_early`).
        """
        if self._early is not None:
            early, self._early = self._early, None
            yield from early.hand_over(self)
            return
        windows = self.windows(context)
        first = next(windows, None)
        if first is None:
            return
        windows = itertools.chain([first], windows)
        if self.windows_ahead and self.services.workers > 1:
            new_reader = partial(self.services.new_stream, type(self))
            ahead = WindowsAhead(new_reader, windows, context, self.windows_ahead)
            yield from ahead.hand_over(self, self.shown)
            return
        yield from self.read_windows(context, self.shown(windows), self.on_window_done)

    def shown(self, windows: t.Iterator[Window]) -> t.Iterator[Window]:
        """Return ``windows``, noted in the run's progress line as they are written (if this stream shows there)."""
        if not self.shows_progress:
            return windows
        return self.services.progress.windows(self.name, windows, self.services.end_date)

    def start_early(self) -> bool:
        """Start reading this stream's lists now, in the background, while the streams before it sync.

        For a stream that ``starts_early`` (Contact Center: another rate-limit label, its
        own limit otherwise idle while the Phone streams sync; a backfill's empty months
        cost a round trip each), when the run has workers (``max_concurrent_requests``
        above 1). Its records wait within a budget (:mod:`tap_zoom_sms.readahead.background`).
        Return whether its reading started.
        """
        if self.starts_early and self.services.workers > 1 and not self.partitions and self._early is None:
            reader = self.services.new_stream(type(self))
            self._early = ListInBackground(reader, self.windows(None), None, self.services.await_answer)
        return self._early is not None

    def stop_early(self) -> None:
        """Stop reading ahead what :meth:`start_early` started, if the run ends before this stream syncs."""
        if self._early is not None:
            self._early.close()
            self._early = None

    def read_window(
        self, window: Window, context: Context | None, covered: dict[Window, dt.datetime]
    ) -> t.Iterator[dict[str, t.Any]]:
        """Yield the records of ``window`` alone (each once), then note in ``covered`` what the reading covered."""

        def done(read: Window, last: bool, claim: dt.datetime) -> None:  # noqa: ARG001
            covered[read] = claim

        return (r for r in self.read_windows(context, iter([window]), done) if r is not WINDOW_READ)

    def read_windows(
        self, context: Context | None, windows: t.Iterator[Window], on_window_done: WindowDone
    ) -> t.Iterator[dict[str, t.Any]]:
        """Read ``windows`` one after another; restart a window whose page token Zoom rejects.

        Zoom's page tokens expire after 15 minutes, and a token from a slow window
        can be refused: the window is then read again from its first page, and the
        records it already gave are not emitted again. ``on_window_done`` runs once
        each window's records are all out.
        """
        self._what = f"GET {urlsplit(self.get_url(context)).path}"
        self._windows, self._on_window_done = windows, on_window_done
        dedupe = WindowDedupe(self.primary_keys, str(self.replication_key))
        restarted: tuple[Window, int] | None = None
        while True:
            try:
                for record in self.request_records(context):
                    self.current_window = self._paginator.current_value.window
                    if record is WINDOW_READ or dedupe.first_sighting(record, self.current_window):
                        yield record
            except PageTokenExpiredError as exc:
                window = self._paginator.current_value.window
                count = restarted[1] + 1 if restarted and restarted[0] == window else 1
                if count > MAX_WINDOW_RESTARTS:
                    raise
                self.logger.warning("%s; reading window %s again from its first page", exc, window.params())
                restarted = (window, count)
                self._windows = itertools.chain([window], self._windows)
            else:
                return

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """Yield the records of a page, each made to match its schema, then maybe WINDOW_READ.

        The records array is an array (see :meth:`_check_page`). A record is conformed
        before the tap reads any field of it (see :mod:`tap_zoom_sms.conform`); one
        without its key is skipped, and reported.
        """
        body = zoom_json(response)
        records = body[self.records_key]
        if records:
            yield from self.conformed(records, response)
        if self.marks_windows and not next_page_token(body):
            yield WINDOW_READ

    def conformed(self, records: t.Iterable[t.Any], response: requests.Response) -> t.Iterator[dict[str, t.Any]]:
        """Yield ``records`` of ``response`` as this stream's schema declares them, skipping those with no key."""
        checks = self.services.record_checks
        text = checks.text_to_repair(response.content)
        where = self._where(response)
        for record in records:
            conformed = checks.conform(self.name, self.schema, record, where, text=text)
            if conformed is not None:
                yield conformed

    def _where(self, response: requests.Response) -> str:
        """Name the request a record came from: its path and window (never its query or token)."""
        path = response.request.path_url.split("?", 1)[0] if response.request is not None else ""
        window = getattr(getattr(self, "_paginator", None), "current_value", None)
        if window is None:
            return f"GET {path}"
        return f"GET {path}, window {format_zoom_time(window.window.start)} to {format_zoom_time(window.window.end)}"

    def validate_response(self, response: requests.Response) -> None:
        """Sort a response into success, retry, token renewal or a clear error.

        Retried: 429, 5xx, 2xx bodies that are not a JSON object (a truncated page),
        and list pages whose records array is not an array (:meth:`_check_page`). A
        401 renews the token and retries once. Anything else ends the run with Zoom's
        code, message and tracking id, save the cases subclasses handle in
        :meth:`client_error`.
        """
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            self._renew_after_401(response)
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(describe_error(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            raise self.client_error(response)
        self._unauthorized_streak = 0
        try:
            body = zoom_json(response)
        except MalformedResponseError as exc:
            raise RetriableAPIError(str(exc), response) from None
        if is_page(response):
            self._check_page(response, body)

    def _check_page(self, response: requests.Response, body: dict[str, t.Any]) -> None:
        """Read a malformed list page again; if it stays so, take it as empty, with one warning.

        A page whose records array is null or missing (or not an array, or whose page
        token is not a string) was once taken as an empty page, and its records were
        lost without a word. Such a page is read again, as a retry, up to
        :data:`MALFORMED_PAGE_REREADS` times. Zoom's OpenAPI marks no field required,
        so a page that stays so may mean "nothing": it is then taken as empty (or as
        its window's last page) with a warning that names the endpoint and the window,
        and the run goes on, so that no later run stops on it again.
        """
        fault = page_fault(body, self.records_key)
        if fault is None:
            self._malformed = None
            return
        url = str(response.request.url)
        reads = self._malformed[1] + 1 if self._malformed and self._malformed[0] == url else 1
        if reads <= MALFORMED_PAGE_REREADS:
            self._malformed = (url, reads)
            again = f"malformed page: read again, {reads} of {MALFORMED_PAGE_REREADS}"
            msg = f"HTTP {response.status_code} from GET {urlsplit(url).path}: {fault} ({again})"
            raise RetriableAPIError(msg, response)
        self._malformed = None
        self.logger.warning(
            "Zoom's page of %s, was still malformed after %d reads (%s): taken as %s, as Zoom may mean that",
            self._where(response),
            reads,
            fault,
            take_as_read(response, self.records_key),
        )

    def client_error(self, response: requests.Response) -> ZoomAPIError:
        """Return the error for a 4xx answer (other than 401 and 429)."""
        code, message = error_fields(response)
        if response.status_code == HTTPStatus.BAD_REQUEST and code in PAGE_TOKEN_CODES and "token" in message.lower():
            return PageTokenExpiredError(describe_error(response))
        return ZoomAPIError(describe_error(response))

    def _renew_after_401(self, response: requests.Response) -> None:
        """Drop the token and retry once; a second 401 in a row is final."""
        self._unauthorized_streak += 1
        if self._unauthorized_streak > 1:
            msg = (
                f"Zoom refused a freshly issued access token: {describe_error(response)} "
                "(check the app's scopes and that it is activated)"
            )
            raise AuthError(msg)
        try:
            self.authenticator.invalidate(_bearer(response))
        except AuthError as exc:
            raise AuthError(f"{exc} ({describe_error(response)})") from None
        raise RetriableAPIError(describe_error(response), response)

    def commit_bookmark(self, value: dt.datetime, context: Context | None = None, **extra: str) -> None:
        """Record that everything up to ``value`` (in ``context``'s partition) has been emitted, and emit STATE."""
        state = self.get_context_state(context)
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = format_zoom_time(value)
        state.update(extra)
        self.state_manager.is_flushed = False
        self.write_state_message()


def _bearer(response: requests.Response) -> str | None:
    """Return the access token ``response``'s request was sent with, if any."""
    header = str(response.request.headers.get("Authorization", "")) if response.request is not None else ""
    return header.removeprefix("Bearer ") or None
