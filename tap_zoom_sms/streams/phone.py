"""Zoom Phone SMS: sessions, the messages of each session, and their attachments.

A session is listed only in the window that holds its *last* message, so its
earlier messages lie in earlier months: for every session listed, the messages
stream reads every month from the run's message lower bound up to the session's
``last_access_time``. That lower bound (``messages_since`` in the sessions
stream's state) is the bookmark the run started from; it is kept until a run
reaches the present, so a run interrupted and resumed still reads the older
messages of sessions it lists after the restart.

Zoom can show a message minutes after the time it is stamped with (indexing lag,
messages written while a list is paged), so each run starts ``lookback_minutes``
before its bookmark, for the session list and for the messages of every session
it lists; what it reads again there is emitted again, and targets upsert it.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import typing as t
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus

from tap_zoom_sms.client import BaseStream, ZoomStream
from tap_zoom_sms.errors import SessionGoneError, ZoomAPIError
from tap_zoom_sms.prefetch import Prefetcher
from tap_zoom_sms.responses import SESSION_GONE_CODES, describe_error, error_fields, zoom_json
from tap_zoom_sms.windows import format_zoom_time, month_windows, parse_time

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.downloads import Download
    from tap_zoom_sms.tap import TapZoomSms
    from tap_zoom_sms.windows import Window

#: Where a message fetched with attachment files carries their downloads until it is written.
DOWNLOADS_KEY = "_tap_zoom_sms_downloads"


@dataclass(frozen=True)
class _WindowEnd:
    """The place, among the sessions read ahead, where a window of the session list ended."""

    window: Window
    last: bool
    covered: dt.datetime


class SmsSessionsStream(ZoomStream):
    """GET /phone/sms/sessions: every session of the account, by last message time.

    With ``user_ids`` set (user-level apps, which cannot read the account's list),
    GET /phone/users/{user_id}/sms/sessions for each user instead: one state
    partition per user, so each user's list has its own bookmark.
    """

    name = "sms_sessions"
    primary_keys = ("session_id",)
    replication_key = "last_access_time"
    records_key = "sms_sessions"

    messages_since: dt.datetime
    #: sessions read ahead of the SDK, and the ends of their windows (see get_records)
    _ahead: collections.deque[dict[str, t.Any] | _WindowEnd] | None = None
    #: the partition (user) being read, whose bookmark the windows commit
    _context: Context | None = None

    @property
    def path(self) -> str:  # type: ignore[override]
        """Return the account's list, or a user's when ``user_ids`` is set."""
        return "/phone/users/{user_id}/sms/sessions" if self.config.get("user_ids") else "/phone/sms/sessions"

    @property
    def partitions(self) -> list[dict[str, str]] | None:
        """Return one partition per user of ``user_ids`` (``me``: the token's own user), or None."""
        return [{"user_id": user_id} for user_id in self.config.get("user_ids") or ()] or None

    def windows(self, context: Context | None) -> t.Iterator[Window]:
        """Read from the bookmark less the look-back (or from start_date) to end_date (or now).

        Also fixes the lower bound of this run's messages: the ``messages_since``
        an interrupted run left in the state (a lower bound already), else the
        bookmark less the look-back, never before start_date.
        """
        state = self.get_context_state(context)
        lookback = dt.timedelta(minutes=self.config["lookback_minutes"])
        start = self._tap.start_date
        if bookmark := state.get("replication_key_value"):
            start = max(start, parse_time(bookmark) - lookback)
        self.messages_since = start
        if pending := state.get("messages_since"):
            self.messages_since = max(self._tap.start_date, min(parse_time(pending), start))
        return month_windows(start, self._tap.end_date)

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """List sessions, fetching the messages of the next few while the SDK writes the current one.

        Bookmarks commit in order: a window's bookmark moves only after every session
        read ahead of it has been written, messages and all.
        """
        self._context = context
        messages = next((s for s in self.child_streams if isinstance(s, SmsMessagesStream)), None)
        workers = int(self.config["max_concurrent_requests"])
        if messages is None or workers <= 1 or not (messages.selected or messages.has_selected_descendents):
            yield from super().get_records(context)
            return
        prefetcher = Prefetcher(lambda: SmsMessagesStream(tap=self._tap), workers)
        messages.prefetcher = prefetcher
        self._ahead = collections.deque()
        try:
            for record in super().get_records(context):
                prefetcher.submit(record["session_id"], self.get_child_context(record, context))
                self._ahead.append(record)
                while len(self._ahead) > 2 * workers:
                    yield from self._release()
            while self._ahead:
                yield from self._release()
        finally:
            self._ahead = None
            messages.prefetcher = None
            prefetcher.close()

    def _release(self) -> t.Iterator[dict[str, t.Any]]:
        """Hand the oldest session read ahead to the SDK, or commit the window that ended before it."""
        assert self._ahead is not None  # noqa: S101
        item = self._ahead.popleft()
        if isinstance(item, _WindowEnd):
            self._commit(item)
        else:
            yield item

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for every session type, filtered on the last message time (never Zoom's defaults)."""
        return {
            **super().get_url_params(context, next_page_token),
            "session_type": self.config["session_type"],
            "filter_type": "last_message_time",
        }

    def get_child_context(self, record: dict, context: Context | None) -> dict:  # noqa: ARG002
        """Tell the messages stream which session to read, and from when to when."""
        until = record.get("last_access_time") or format_zoom_time(self._paginator.current_value.window.end)
        return {
            "session_id": record["session_id"],
            "messages_since": format_zoom_time(self.messages_since),
            "messages_until": until,
        }

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:
        """Commit ``window``, or queue its commit behind the sessions still read ahead."""
        if self._ahead is not None:
            self._ahead.append(_WindowEnd(window, last, covered))
        else:
            self._commit(_WindowEnd(window, last, covered))

    def _commit(self, done: _WindowEnd) -> None:
        """Advance the bookmark to what ``done.window`` covered: its sessions and messages are all out.

        Once a run has read up to the present, the next run's sessions can only have
        new messages after it (less the look-back), so ``messages_since`` moves up
        too. A run that stopped at an end_date in the past leaves it where it was:
        sessions whose last message lies after end_date were not listed, and their
        earlier messages are still due.
        """
        end_date = self._tap.end_date
        reached_present = done.last and (end_date is None or done.window.end < end_date)
        since = done.covered if reached_present else self.messages_since
        self.commit_bookmark(done.covered, self._context, messages_since=format_zoom_time(since))


class SmsMessagesStream(ZoomStream):
    """GET /phone/sms/sessions/{session_id}: the messages of one session, oldest first."""

    name = "sms_messages"
    path = "/phone/sms/sessions/{session_id}"
    primary_keys = ("message_id",)
    replication_key = "date_time"
    records_key = "sms_histories"
    parent_stream_type = SmsSessionsStream
    #: One state entry for the stream, not one per session: state must stay small.
    state_partitioning_keys: t.ClassVar[list[str]] = []

    def windows(self, context: Context | None) -> t.Iterator[Window]:
        """Read the session's months from the run's lower bound to its last message."""
        assert context is not None  # noqa: S101 (a child stream always has one)
        until = parse_time(context["messages_until"])
        since = min(parse_time(context["messages_since"]), until)
        return month_windows(since, until)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for messages in ascending creation order."""
        return {**super().get_url_params(context, next_page_token), "sort": 1}

    #: set by the sessions stream while it reads messages ahead in worker threads
    prefetcher: Prefetcher | None = None

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Read the session's messages (or take them, read ahead); skip a session deleted since it was listed."""
        assert context is not None  # noqa: S101
        if self.prefetcher is not None:
            fetched = self.prefetcher.take(context["session_id"])
            if fetched is not None:
                yield from fetched
                return
        try:
            for message in super().get_records(context):
                yield self._with_downloads(message, context["session_id"])
        except SessionGoneError as exc:
            self.logger.warning("Skipping a session that no longer exists: %s", exc)

    def _with_downloads(self, message: dict[str, t.Any], session_id: str) -> dict[str, t.Any]:
        """Start downloading the message's files, if asked to; post_process waits for them."""
        downloader = self._tap.downloader
        if downloader is None or not message.get("attachments"):
            return message
        refresh = partial(self._tap.message_lookup, session_id, message["message_id"])
        message[DOWNLOADS_KEY] = [
            downloader.submit(session_id, message["message_id"], attachment, refresh)
            for attachment in message["attachments"]
        ]
        return message

    def fetch_message(self, session_id: str, message_id: str) -> dict[str, t.Any] | None:
        """GET one message (with fresh download URLs); None if it, or its session, no longer exists."""
        url = f"{self.url_base}/phone/sms/sessions/{session_id}/messages/{message_id}"
        request = self.build_prepared_request(method="GET", url=url, headers=self.http_headers)
        try:
            response = self.request_decorator(self._request)(request, None)
        except SessionGoneError:
            return None
        return zoom_json(response)

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
        self._downloads = [future.result() for future in downloads] if downloads else None
        return row

    #: the downloads of the message being written (see post_process and generate_child_contexts)
    _downloads: list[Download] | None = None

    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[dict]:  # noqa: ARG002
        """Write the message's attachments here, and ask the SDK for no child sync.

        The SDK would sync the attachments stream once per message with files: a log
        line, a state lookup and three metrics each, more than the records themselves
        cost. Attachments need no request, so they are written from the message.
        """
        if record.get("attachments") and self.stream_maps[0].get_filter_result(record):
            for child in self.child_streams:
                if isinstance(child, AttachmentsStream) and child.selected:
                    child.write_from_message(record, self._downloads)
        return ()


class AttachmentsStream(BaseStream):
    """One record per file attached to a message, taken from the message itself.

    With ``attachments_download_path`` set, each record also says where its file
    was stored (or why it was not); files that failed are listed in this stream's
    state (``failed_downloads``) and tried again at the start of the next run.
    """

    name = "attachments"
    primary_keys = ("message_id", "id")
    replication_key = "date_time"
    parent_stream_type = SmsMessagesStream
    state_partitioning_keys: t.ClassVar[list[str]] = []

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Yield the attachments of the message in ``context`` with its keys and time (no request)."""
        assert context is not None  # noqa: S101
        message = context["message"]
        downloads = context.get("downloads") or [None] * len(message["attachments"])
        for attachment, download in zip(message["attachments"], downloads, strict=True):
            record = {
                **attachment,
                "message_id": message["message_id"],
                "session_id": message["session_id"],
                "date_time": message.get("date_time"),
            }
            if download is not None:
                record.update(download.fields())
                self._track(record, failed=download.download_error is not None)
            yield record

    def write_from_message(self, message: dict[str, t.Any], downloads: list[Download] | None = None) -> None:
        """Write the RECORD messages of a message's attachments (see SmsMessagesStream)."""
        self._write_schema_message()
        for record in self.get_records({"message": message, "downloads": downloads}):
            self._write_record_message(record)

    def retry_failed_downloads(self) -> None:
        """Download again the files earlier runs could not, and write their records anew.

        Each is looked up through its message, for a fresh download URL. One whose
        message no longer exists at Zoom is dropped from the list, with a warning.
        """
        downloader = self._tap.downloader
        pending = list(self.stream_state.get("failed_downloads") or ())
        if downloader is None or not pending:
            return
        self.logger.info("Retrying %d attachment file(s) that earlier runs could not download", len(pending))
        lookup = self._tap.message_lookup
        owed = []
        for item in pending:
            session_id, message_id = item["session_id"], item["message_id"]
            message = lookup(session_id, message_id)
            attachment = next(
                (a for a in (message or {}).get("attachments") or () if a.get("id") == item["attachment_id"]), None
            )
            if message is None or attachment is None:
                self.logger.warning(
                    "Attachment %s of message %s is no longer at Zoom; not retrying it",
                    item["attachment_id"],
                    message_id,
                )
                self._forget(message_id, item["attachment_id"])
                continue
            refresh = partial(lookup, session_id, message_id)
            one = {**message, "session_id": session_id, "attachments": [attachment]}
            owed.append((one, downloader.submit(session_id, message_id, attachment, refresh)))
        for message, download in owed:
            self.write_from_message(message, [download.result()])
        self._write_state_message()

    def _track(self, record: dict[str, t.Any], *, failed: bool) -> None:
        """List a failed file in the state, or take a stored one off the list."""
        if not failed:
            self._forget(record["message_id"], record["id"])
            return
        pending = self.stream_state.setdefault("failed_downloads", [])
        key = {"session_id": record["session_id"], "message_id": record["message_id"], "attachment_id": record["id"]}
        if key not in pending:
            pending.append(key)

    def _forget(self, message_id: str, attachment_id: str) -> None:
        pending = self.stream_state.get("failed_downloads")
        if pending:
            pending[:] = [p for p in pending if (p["message_id"], p["attachment_id"]) != (message_id, attachment_id)]
            if not pending:
                del self.stream_state["failed_downloads"]

    def _increment_stream_state(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Keep no bookmark: attachments come with their messages, see SmsSessionsStream."""


class MessageLookup:
    """GET one message from any thread, each thread with its own stream object.

    Download URLs are refreshed from the download pool's threads; stream objects
    are not thread-safe, so none is shared between threads.
    """

    def __init__(self, tap: TapZoomSms) -> None:
        """Look messages up for ``tap``."""
        self._tap = tap
        self._local = threading.local()

    def __call__(self, session_id: str, message_id: str) -> dict[str, t.Any] | None:
        """Return the message (fresh download URLs), or None if it no longer exists."""
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = SmsMessagesStream(tap=self._tap)
        return stream.fetch_message(session_id, message_id)
