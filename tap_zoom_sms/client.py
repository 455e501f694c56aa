"""The base of every Zoom stream: auth, pacing, windows, paging, errors and bookmarks."""

from __future__ import annotations

import itertools
import typing as t
from functools import cached_property
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import requests
from singer_sdk import RESTStream, SchemaDirectory, StreamSchema
from singer_sdk.exceptions import RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import RemoveRecordTransform

from tap_zoom_sms import retries
from tap_zoom_sms.errors import AuthError, DailyLimitError, PageTokenExpiredError, ZoomAPIError
from tap_zoom_sms.pagination import WINDOW_READ, WindowPage, WindowPaginator, next_page_token
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
from tap_zoom_sms.retries import TRANSIENT, Retrying
from tap_zoom_sms.sdk import StreamHooks
from tap_zoom_sms.windows import Window, WindowDedupe, format_zoom_time

if t.TYPE_CHECKING:
    import datetime as dt

    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.auth import StaticTokenAuthenticator, ZoomS2SAuthenticator
    from tap_zoom_sms.run import RunServices

#: Restarts of one window after Zoom rejects its page token, before giving up.
MAX_WINDOW_RESTARTS = 3
#: Reads again of a page whose records array is null, missing or not an array (or whose page
#: token is not a string), before it is taken as Zoom may mean it: no records (one warning).
#: Each is a retry of the request, within its budget of faults (``retries.MAX_FAULT_TRIES``).
MALFORMED_PAGE_REREADS = 3


def schema_directory() -> SchemaDirectory:
    """Locate ``schemas/``: inside the installed wheel, else at the top of a checkout."""
    packaged = resources.files("tap_zoom_sms") / "schemas"
    if packaged.is_dir():
        return SchemaDirectory(packaged)
    return SchemaDirectory(Path(__file__).resolve().parent.parent / "schemas")


SCHEMAS = schema_directory()


class BaseStream(StreamHooks):
    """What every stream of the tap shares, whether it makes requests or not.

    - It is given the run's services (:class:`~tap_zoom_sms.run.RunServices`) when made.
    - No type conformance: records are decoded from Zoom's JSON and made to match their
      schema as their page is parsed (:mod:`tap_zoom_sms.conform`), so every value is
      already a JSON type of its schema; the SDK's recursive conformance would rebuild
      every record to the same result, the largest per-record cost after encoding.
    - The SCHEMA message is written once per run, and no bookmark moves per record
      (see :class:`~tap_zoom_sms.sdk.StreamHooks`).
    """

    schema = StreamSchema(SCHEMAS)
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, *args: t.Any, services: RunServices, **kwargs: t.Any) -> None:
        """Make the stream for a run served by ``services``."""
        self.services = services
        super().__init__(*args, **kwargs)

    def carries(self, record: dict[str, t.Any]) -> bool:
        """Say whether ``record``'s children are to be read: not if a stream map's ``__filter__`` drops it.

        A filter on sessions is how people keep a department's or a number's SMS out of
        the warehouse, so it carries to the session's messages and attachments, and no
        file of theirs is downloaded. A stream mapped to null (or deselected) only
        hides its own records: its children still come (the SDK would stop them too).
        """
        stream_map = self.stream_maps[0]
        return isinstance(stream_map, RemoveRecordTransform) or bool(stream_map.get_filter_result(record))

    def record_written(self, record: dict) -> None:
        """Count the record in the run's progress, with how far it is in the stream's range."""
        self.services.progress.record(self.name, record.get(self.replication_key) if self.replication_key else None)


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
    #: Whether its requests go ahead of those waiting at the limiter: a list whose pages the
    #: workers' next fetches depend on (see :class:`tap_zoom_sms.ratelimit.RateLimiter`).
    paced_first: t.ClassVar[bool] = False

    _paginator: WindowPaginator
    _windows: t.Iterator[Window]
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
        """Retry transient failures as :class:`~tap_zoom_sms.retries.Retrying` decides.

        Replaces the SDK's five tries with backoff: 429s wait as ``Retry-After`` says
        and keep trying for minutes; the daily cap closes the label at once.
        """
        label = self.rate_limit_label

        def send(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            retrying = Retrying(self.logger, f"GET {self.path}", label)
            while True:
                try:
                    return func(prepared_request, context)
                except TRANSIENT as exc:
                    try:
                        wait = retrying.wait_after(exc)
                    except DailyLimitError as limit:
                        self.services.limiters[label].close(limit)
                        raise
                    retrying.log(exc, wait)
                    retries.sleep(wait)

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
        self._paginator = WindowPaginator(self._windows, self.on_window_done, self._what)
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
        """Read every window; restart a window whose page token Zoom rejects.

        Zoom's page tokens expire after 15 minutes, and a token from a slow window
        can be refused: the window is then read again from its first page, and the
        records it already gave are not emitted again. A record on the boundary two
        windows share is emitted once.
        """
        windows = self.windows(context)
        if self.shows_progress:
            windows = self.services.progress.windows(self.name, windows, self.services.end_date)
        first = next(windows, None)
        if first is None:
            return
        self._what = f"GET {urlsplit(self.get_url(context)).path}"
        self._windows = itertools.chain([first], windows)
        dedupe = WindowDedupe(self.primary_keys, str(self.replication_key))
        restarted: tuple[Window, int] | None = None
        while True:
            try:
                for record in self.request_records(context):
                    if record is WINDOW_READ or dedupe.first_sighting(record, self._paginator.current_value.window):
                        yield record
            except PageTokenExpiredError as exc:
                window = self._paginator.current_value.window
                count = restarted[1] + 1 if restarted and restarted[0] == window else 1
                if count > MAX_WINDOW_RESTARTS:
                    raise
                self.logger.warning("%s; reading window %s again from its first page", exc, window.params())
                restarted = (window, count)
                self._windows = itertools.chain([window], windows)
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
            self.authenticator.invalidate()
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
