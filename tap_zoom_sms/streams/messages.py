"""GET /phone/sms/sessions/{session_id}: the messages of one session, each with its files' downloads started."""

from __future__ import annotations

import typing as t
from functools import partial
from http import HTTPStatus

from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.conform.records import missing_key
from tap_zoom_sms.errors import SessionGoneError, ZoomAPIError
from tap_zoom_sms.pagination import next_page_token
from tap_zoom_sms.ratelimit import continues_a_chain
from tap_zoom_sms.readahead.bothends import BothEnds, NewestPage, newest_first
from tap_zoom_sms.responses import SESSION_GONE_CODES, describe_error, error_fields, zoom_json
from tap_zoom_sms.sdk import request_once
from tap_zoom_sms.streams.sessions import SmsSessionsStream
from tap_zoom_sms.windows import month_windows, parse_time

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.discovery.boundary import BoundaryMessages
    from tap_zoom_sms.downloads import Download
    from tap_zoom_sms.readahead.prefetch import Beside
    from tap_zoom_sms.readahead.queue import ReadAhead
    from tap_zoom_sms.windows import Window

#: Where a message fetched with attachment files carries their downloads until it is written.
DOWNLOADS_KEY = "_tap_zoom_sms_downloads"


@t.runtime_checkable
class WrittenFromMessage(t.Protocol):
    """A child stream whose records come from the message itself (the attachments), with no request."""

    def write_from_message(self, message: dict[str, t.Any], downloads: list[Download | None] | None = None) -> None:
        """Write the records of ``message``."""


def placeable(attachment: dict[str, t.Any]) -> bool:
    """Say whether an attachment has the id that keys its record and names its file."""
    return missing_key("attachments", attachment) is None


class SmsMessagesStream(ZoomStream):
    """GET /phone/sms/sessions/{session_id}: the messages of one session, oldest first."""

    name = "sms_messages"
    path = "/phone/sms/sessions/{session_id}"
    primary_keys = ("message_id",)
    replication_key = "date_time"
    records_key = "sms_histories"
    parent_stream_type = SmsSessionsStream
    shows_progress = False  # a session's own windows say nothing of the run's progress
    #: One state entry for the stream, not one per session: state must stay small.
    state_partitioning_keys: t.ClassVar[list[str]] = []

    #: set by the sessions stream while it reads messages ahead in worker threads
    read_ahead: ReadAhead | None = None
    #: set by the sessions stream while discovery reads each session month by month
    boundary: BoundaryMessages | None = None
    #: the downloads of the message being written (see post_process and generate_child_contexts)
    _downloads: list[Download | None] | None = None
    #: the window being read from both ends, if it is (see parse_response)
    _both: BothEnds | None = None
    #: runs a request on an idle worker of the read-ahead, for a worker's own stream (see Prefetcher.beside)
    beside: Beside | None = None

    def windows(self, context: Context | None) -> t.Iterator[Window]:
        """Read the session's months from the run's lower bound to its last message."""
        assert context is not None  # noqa: S101 (a child stream always has one)
        until = parse_time(context["messages_until"])
        since = min(parse_time(context["messages_since"]), until)
        return month_windows(since, until)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for messages in ascending creation order."""
        return {**super().get_url_params(context, next_page_token), "sort": 1}

    def parse_response(self, response: requests.Response) -> t.Iterable[dict[str, t.Any]]:
        """Yield a page's messages; when the limit has room, read the window from both ends.

        See :mod:`tap_zoom_sms.readahead.bothends`: a window's first page with more to
        come starts the reading of its newest page, when the limiter has a turn nobody
        waits for and a worker of the read-ahead is idle; each later page then says whether
        the newest page holds the rest.
        """
        records = super().parse_response(response)
        more = next_page_token(zoom_json(response)) is not None
        first = response.request is None or not continues_a_chain(response.request)
        if first:
            has_url = response.request is not None
            self._both = self._from_both_ends(response) if more and has_url and self._limit_has_room() else None
        both = self._both
        if both is None:
            yield from records
            return
        page = list(records)
        both.read(page)  # before the SDK's hands are on the records
        yield from page
        if not more or not both.usable:
            self._both = None
            return
        if first:
            return  # the newest page is on its way, beside the second
        rest = both.rest()
        if rest is not None:
            self._both = None
            yield from self.conformed(rest, both.newest.response)
            self._paginator.end_window()

    def _limit_has_room(self) -> bool:
        """Say whether a request now would take a turn of the limit nobody waits for."""
        return self.services.limiters[self.rate_limit_label].has_room()

    def _from_both_ends(self, first_page: requests.Response) -> BothEnds | None:
        """Have an idle worker read the newest page of ``first_page``'s window; None if no worker is idle."""
        url = newest_first(str(first_page.request.url))
        future = None if self.beside is None else self.beside(lambda reader: reader.get_page(url, retried=False))
        return None if future is None else BothEnds(NewestPage(future, self.records_key), self.logger)

    def get_page(self, url: str, *, retried: bool = True) -> requests.Response:
        """GET ``url`` outside the paging, with this stream's pacing, renewal and checks (retried if ``retried``).

        A window's newest page is not retried: nobody waits for it, and a worker retrying a
        429 for minutes would hold up the fetches and the run's end for a page nobody needs.
        """
        request = self.build_prepared_request(method="GET", url=url, headers=self.http_headers)
        send = partial(request_once, self)
        return (self.request_decorator(send) if retried else send)(request, None)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read the session's messages (or take them, read ahead), each once across the windows of a run."""
        records = self._read(context)
        if self.boundary is None:
            yield from records
        else:
            yield from filter(self.boundary.first_sighting, records)

    def _read(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read the session's messages (or take them, read ahead); skip a session deleted since it was listed."""
        assert context is not None  # noqa: S101
        if self.read_ahead is not None:
            fetched = self.read_ahead.take(context)
            if fetched is not None:
                yield from fetched
                return
        try:
            with self.services.progress.fetch():  # a fetch's requests are what the time left is counted in
                for message in super().get_records(context):
                    yield self._with_downloads(message, context["session_id"])
        except SessionGoneError as exc:
            self.logger.warning("Skipping a session that no longer exists: %s", exc)

    def _with_downloads(self, message: dict[str, t.Any], session_id: str) -> dict[str, t.Any]:
        """Start downloading the message's files, if asked to; post_process waits for them."""
        downloader = self.services.downloader
        if (
            downloader is None
            or not message.get("attachments")
            or not self.carries({**message, "session_id": session_id})
        ):
            return message
        refresh = partial(self.services.message_lookup, session_id, message["message_id"])
        message[DOWNLOADS_KEY] = [
            downloader.submit(session_id, message["message_id"], attachment, refresh) if placeable(attachment) else None
            for attachment in message["attachments"]
        ]
        return message

    def message_times(self, session_id: str, since: str, until: str) -> list[str]:
        """Return the times of the session's messages in ``[since, until]``, month by month (no file downloads)."""
        context = {"session_id": session_id, "messages_since": since, "messages_until": until}
        try:
            return [message["date_time"] for message in ZoomStream.get_records(self, context)]
        except SessionGoneError:
            return []

    def fetch_message(self, session_id: str, message_id: str) -> dict[str, t.Any] | None:
        """GET one message (with fresh download URLs); None if it, or its session, no longer exists."""
        url = f"{self.url_base}/phone/sms/sessions/{session_id}/messages/{message_id}"
        try:
            response = self.get_page(url)
        except SessionGoneError:
            return None
        return next(self.conformed([zoom_json(response)], response), None)

    def client_error(self, response: requests.Response) -> ZoomAPIError:
        """Recognise a session that retention deleted between the list and its details."""
        code, _ = error_fields(response)
        if response.status_code == HTTPStatus.NOT_FOUND and code in SESSION_GONE_CODES:
            return SessionGoneError(describe_error(response))
        return super().client_error(response)

    def post_process(self, row: dict, context: Context | None = None) -> dict:
        """Add the session's id, which Zoom leaves out of its messages."""
        assert context is not None  # noqa: S101
        row["session_id"] = context["session_id"]
        downloads = row.pop(DOWNLOADS_KEY, None)
        self._downloads = [None if future is None else future.result() for future in downloads] if downloads else None
        return row

    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[dict]:  # noqa: ARG002
        """Write the message's attachments here, and ask the SDK for no child sync.

        The SDK would sync the attachments stream once per message with files: a log
        line, a state lookup and three metrics each, more than the records themselves
        cost. Attachments need no request, so they are written from the message.
        """
        if record.get("attachments") and self.carries(record):
            for child in self.child_streams:
                if isinstance(child, WrittenFromMessage) and child.selected:
                    child.write_from_message(record, self._downloads)
        return ()
