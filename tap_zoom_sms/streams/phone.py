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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus

from tap_zoom_sms import interrupts
from tap_zoom_sms.client import BaseStream, ZoomStream
from tap_zoom_sms.conform import missing_key
from tap_zoom_sms.discovery import (
    SAMPLE_FROM_WINDOWS,
    BoundaryMessages,
    Discovery,
    DiscoveryFellShortError,
    RequestCounter,
    sessions_path,
)
from tap_zoom_sms.errors import SessionGoneError, ZoomAPIError
from tap_zoom_sms.pagination import WINDOW_READ
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
#: Where a session read ahead carries the context its messages were fetched for, until it is written.
CHILD_CONTEXT_KEY = "_tap_zoom_sms_child_context"


def fetch_key(context: t.Mapping[str, t.Any]) -> str:
    """Name one fetch of a session's messages: its session and range (a session can be fetched twice in a run)."""
    return f"{context['session_id']} {context['messages_since']} {context['messages_until']}"


@dataclass(frozen=True)
class _WindowEnd:
    """The place, among the sessions read ahead, where a window of the session list ended."""

    window: Window
    last: bool
    covered: dt.datetime
    #: the sessions of discovery's sample check that the window's activity lists name
    sampled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Activity:
    """A session with messages in a window that does not list it (its last message is later)."""

    context: dict[str, str]


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
    paced_first = True  # the workers wait on its pages for sessions to fetch
    marks_windows = True  # see _read

    messages_since: dt.datetime
    #: how this run finds the months of each session's messages (None: the exhaustive walk)
    _discovery: Discovery | None = None
    #: the sessions listed by their last message in the window being read
    _listed: set[str]
    #: sessions active in windows already read whose messages a stream map's filter held back there
    _withheld: set[str]
    #: sessions read ahead of the SDK, and the ends of their windows (see get_records)
    _ahead: collections.deque[dict[str, t.Any] | _WindowEnd | _Activity] | None = None
    #: the partition (user) being read, whose bookmark the windows commit
    _context: Context | None = None
    _prefetcher: Prefetcher | None = None
    _child_context: dict[str, str] | None = None
    _read_ahead = 0
    #: how many windows' ends are among the sessions read ahead
    _windows_ahead = 0

    #: set once a partition's lists fell short: Zoom under-reports for the account (see get_records)
    _fell_short = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Start with no partition read."""
        super().__init__(*args, **kwargs)
        #: the partitions (users) this run read with the activity lists, and the lower bound of each
        self._read_by_activity: list[tuple[Context | None, dt.datetime]] = []

    @property
    def path(self) -> str:  # type: ignore[override]
        """Return the account's list, or a user's when ``user_ids`` is set."""
        return sessions_path(self.config)

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
        self._discovery = None
        messages = self._messages_stream()
        if messages is not None:
            messages.boundary = None
        if self._discovery_mode(state) == "activity":
            # month by month from the messages' lower bound: the months before the bookmark that an
            # interrupted run still owes are read for every session active in them
            start = self.messages_since
            months = list(month_windows(start, self._tap.end_date))
            if len(months) > 1:
                self._discovery = Discovery(self._tap, context, sample=len(months) >= SAMPLE_FROM_WINDOWS)
                self._discovery.start_sample(months, self._walk, self.logger)
                if messages is not None:
                    messages.boundary = BoundaryMessages()
        self._listed, self._withheld = set(), set()
        return self._reading_ahead(month_windows(start, self._tap.end_date))

    def _reading_ahead(self, windows: t.Iterator[Window]) -> t.Iterator[Window]:
        """Yield ``windows``, starting each one's activity lists as the paginator moves to it."""
        for window in windows:
            if self._discovery is not None:
                self._discovery.read_ahead(window)
            yield window

    def _messages_stream(self) -> SmsMessagesStream | None:
        return next((s for s in self.child_streams if isinstance(s, SmsMessagesStream)), None)

    def _discovery_mode(self, state: dict[str, t.Any]) -> str:
        """Return the partition's message discovery: the setting's, unless a check fell back.

        A check that fell short in an earlier run of the partition says so in its state;
        one that fell short earlier in this run, in any partition, makes every later
        partition exhaustive too, and its state says so until it reaches the present.
        """
        if self._fell_short:
            state["message_discovery"] = "exhaustive"
        return state.get("message_discovery") or self.config["message_discovery"]

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """List sessions and read their messages; start again exhaustively if discovery falls short.

        When Zoom's activity lists miss a session (see :mod:`tap_zoom_sms.discovery`),
        what they gave may have missed other messages in the months already read: the
        bookmark goes back to this run's lower bound, the state remembers the fallback,
        and the run reads the whole range again with the exhaustive walk. Zoom's lists
        are the account's, so the other partitions (``user_ids``) are not trusted either:
        those still to come read exhaustively, and those already read with the lists are
        read again by the next run (:meth:`_read_again_next_run`).
        """
        while True:
            try:
                yield from self._read(context)
            except DiscoveryFellShortError as exc:
                self.logger.warning(
                    "%s: reading every month of every session instead (message_discovery: exhaustive), from %s again",
                    exc,
                    format_zoom_time(self.messages_since),
                )
                self._read_again_from(context, self.messages_since)
                self._fell_short = True
                self._read_again_next_run()
            else:
                if self._discovery is not None:
                    self._read_by_activity.append((context, self.messages_since))
                return
            finally:
                if self._discovery is not None:
                    self._discovery.close()

    def _read_again_next_run(self) -> None:
        """Send the partitions this run read with the activity lists back to their lower bound, exhaustive.

        The SDK reads each partition once a run, so they are read again by the next:
        their bookmarks go back to where this run started them, with the fallback in
        their state, and a warning says so.
        """
        for context, since in self._read_by_activity:
            self._read_again_from(context, since)
            self.logger.warning(
                "Sessions of %s were read with Zoom's activity lists earlier in this run: "
                "the next run reads them again, every month of every session, from %s",
                context,
                format_zoom_time(since),
            )
        self._read_by_activity.clear()

    def _read_again_from(self, context: Context | None, since: dt.datetime) -> None:
        """Move ``context``'s bookmark back to ``since``, to be read from there exhaustively (state says so)."""
        self.get_context_state(context)["message_discovery"] = "exhaustive"
        self.commit_bookmark(since, context, messages_since=format_zoom_time(since))

    def _read(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """List sessions, fetching the messages of the next few while the SDK writes the current one.

        Bookmarks commit in order: a window's bookmark moves only after every session
        read ahead of it has been written, messages and all.
        """
        self._context = context
        messages = self._messages_stream()
        workers = self._tap.message_workers
        if messages is None or workers <= 1 or not (messages.selected or messages.has_selected_descendents):
            for record in super().get_records(context):
                if record is not WINDOW_READ:
                    self._listed.add(record["session_id"])
                    yield record
            return
        prefetcher = Prefetcher(lambda: SmsMessagesStream(tap=self._tap), workers)
        messages.prefetcher = prefetcher
        self._ahead, self._windows_ahead = collections.deque(), 0
        # as far ahead as the prefetcher holds: when the list's next page is asked for, the sessions
        # behind it hold that many fetches of work, seconds of it, longer than the page takes
        self._prefetcher, self._read_ahead = prefetcher, prefetcher.max_held
        try:
            for record in super().get_records(context):
                if record is WINDOW_READ:
                    # a window's list is read, and its active sessions join the read-ahead next
                    # (on_window_done): hand out the windows before the one still being fetched, so
                    # that two months at most are held, even where months list no session
                    while self._windows_ahead > 1:
                        yield from self._release()
                    continue
                self._listed.add(record["session_id"])
                child = self._context_for(record) if self.carries(record) else None
                if child is not None:
                    self._queue(child)
                self._ahead.append({**record, CHILD_CONTEXT_KEY: child})
                while len(self._ahead) > self._read_ahead:
                    yield from self._release()
            while self._ahead:
                yield from self._release()
        finally:
            self._ahead = self._prefetcher = None
            messages.prefetcher = None
            prefetcher.close()

    def _queue(self, context: dict[str, t.Any]) -> None:
        """Have the workers fetch ``context``'s messages as they free up (see :class:`Prefetcher`)."""
        assert self._prefetcher is not None  # noqa: S101
        self._prefetcher.queue(fetch_key(context), context)

    def _release(self) -> t.Iterator[dict[str, t.Any]]:
        """Hand the oldest session read ahead to the SDK, or commit the window that ended before it."""
        assert self._ahead is not None  # noqa: S101
        item = self._ahead.popleft()
        if isinstance(item, _WindowEnd):
            self._windows_ahead -= 1
            self._commit(item)
            return
        if isinstance(item, _Activity):
            self._sync_children(item.context)
            return
        child = item[CHILD_CONTEXT_KEY]
        yield item
        # the SDK has written it, and its messages were taken (a stream map filtering a session out
        # after it was read ahead: a stream map of the user's, see carries, whose result can differ)
        assert self._prefetcher is not None  # noqa: S101
        if child is not None:
            self._prefetcher.discard(fetch_key(child))

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Ask for every session type, filtered on the last message time (never Zoom's defaults)."""
        return {
            **super().get_url_params(context, next_page_token),
            "session_type": self.config["session_type"],
            "filter_type": "last_message_time",
        }

    def post_process(self, row: dict, context: Context | None = None) -> dict:  # noqa: ARG002
        """Take off the context a session read ahead was fetched for (see get_child_context)."""
        self._child_context = row.pop(CHILD_CONTEXT_KEY, None)
        return row

    def get_child_context(self, record: dict, context: Context | None) -> dict:  # noqa: ARG002
        """Tell the messages stream which session to read, and from when to when.

        A session read ahead is written after the list has moved on to later
        windows: its messages were fetched for the context made when it was listed,
        and that same context is given here, so the fetch is found and matches.
        """
        child, self._child_context = self._child_context, None
        return child or self._context_for(record)

    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[dict]:
        """Read the session's messages here, unless a stream map's filter drops it (see ``carries``)."""
        if self.carries(record):
            self._sync_children(self.get_child_context(record, context))
        else:
            self._child_context = None
        return ()

    def _context_for(self, record: dict) -> dict[str, str]:
        """Return the messages' context of a session just listed, in the window being read.

        With discovery, the earlier months of the session were read as the months went
        by, unless a stream map's filter held them back there: then they are read now.
        """
        window = self._paginator.current_value.window
        until = record.get("last_access_time") or format_zoom_time(window.end)
        read = self._discovery is not None and record["session_id"] not in self._withheld
        since = window.start if read else self.messages_since
        return {"session_id": record["session_id"], "messages_since": format_zoom_time(since), "messages_until": until}

    def on_window_done(self, window: Window, last: bool, covered: dt.datetime) -> None:
        """Read the window's other active sessions, then commit it (or queue both behind the sessions read ahead)."""
        listed, self._listed = self._listed, set()
        sampled: frozenset[str] = frozenset()
        if self._discovery is not None:
            sessions = self._discovery.active(window)
            active = set(sessions)
            self._discovery.check(window, active, listed)
            sampled = self._discovery.sampled_among(active)
            carried = {session_id for session_id in active - listed if self.carries(sessions[session_id])}
            self._withheld |= active - listed - carried
            for context in self._contexts(window, carried):
                if self._ahead is not None:
                    self._queue(context)
                    self._ahead.append(_Activity(context))
                else:
                    self._sync_children(context)
        done = _WindowEnd(window, last, covered, sampled)
        if self._ahead is not None:
            self._ahead.append(done)
            self._windows_ahead += 1
        else:
            self._commit(done)

    def _walk(
        self, session_ids: list[str], since: str, until: str, counter: RequestCounter, cancelled: threading.Event
    ) -> dict[str, list[str]]:
        """Return the message times of each session over ``[since, until]``, every window of every session at once.

        A walk is a request per window: one session at a time, or even one window after
        another, the sample check would leave the workers idle for tens of seconds at a
        second of latency.
        """
        local = threading.local()
        windows = [
            (format_zoom_time(w.start), format_zoom_time(w.end))
            for w in month_windows(parse_time(since), parse_time(until))
        ]
        tasks = [(session_id, lo, hi) for session_id in session_ids for lo, hi in windows]

        def walk(task: tuple[str, str, str]) -> list[str]:
            if cancelled.is_set():  # the run is over: nobody will check the result
                return []
            if not hasattr(local, "stream"):
                local.stream = SmsMessagesStream(tap=self._tap)
                counter.attach(local.stream)
            return local.stream.message_times(*task)

        found: dict[str, list[str]] = {session_id: [] for session_id in session_ids}
        pool = ThreadPoolExecutor(max(1, min(len(tasks), self._tap.message_workers)), "zoom-sample")
        try:
            for (session_id, _, _), times in zip(tasks, pool.map(walk, tasks), strict=True):
                found[session_id] += times
        finally:  # after a stop signal, not waiting for walks blocked in a read
            pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)
        return found

    @staticmethod
    def _contexts(window: Window, session_ids: set[str]) -> list[dict[str, str]]:
        """Return the contexts that read ``window`` for sessions active there and listed in a later window."""
        since, until = format_zoom_time(window.start), format_zoom_time(window.end)
        return [{"session_id": sid, "messages_since": since, "messages_until": until} for sid in sorted(session_ids)]

    def _commit(self, done: _WindowEnd) -> None:
        """Advance the bookmark to what ``done.window`` covered: its sessions and messages are all out.

        Once a run has read up to the present, the next run's sessions can only have
        new messages after it (less the look-back), so ``messages_since`` moves up
        too. A run that stopped at an end_date in the past leaves it where it was:
        sessions whose last message lies after end_date were not listed, and their
        earlier messages are still due.
        """
        if self._discovery is not None:
            self._discovery.check_sample(done.window, done.sampled)
        end_date = self._tap.end_date
        reached_present = done.last and (end_date is None or done.window.end < end_date)
        # with discovery, every session's messages up to the window's end have been read
        since = done.covered if reached_present or self._discovery is not None else self.messages_since
        if reached_present:
            self.get_context_state(self._context).pop("message_discovery", None)
        self.commit_bookmark(done.covered, self._context, messages_since=format_zoom_time(since))


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
    #: set by the sessions stream while discovery reads each session month by month
    boundary: BoundaryMessages | None = None

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
        if self.prefetcher is not None:
            fetched = self.prefetcher.take(fetch_key(context))
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
        if (
            downloader is None
            or not message.get("attachments")
            or not self.carries({**message, "session_id": session_id})
        ):
            return message
        refresh = partial(self._tap.message_lookup, session_id, message["message_id"])
        message[DOWNLOADS_KEY] = [
            downloader.submit(session_id, message["message_id"], attachment, refresh)
            if _placeable(attachment)
            else None
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
        request = self.build_prepared_request(method="GET", url=url, headers=self.http_headers)
        try:
            response = self.request_decorator(self._request)(request, None)
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

    #: the downloads of the message being written (see post_process and generate_child_contexts)
    _downloads: list[Download | None] | None = None

    def generate_child_contexts(self, record: dict, context: Context | None) -> t.Iterable[dict]:  # noqa: ARG002
        """Write the message's attachments here, and ask the SDK for no child sync.

        The SDK would sync the attachments stream once per message with files: a log
        line, a state lookup and three metrics each, more than the records themselves
        cost. Attachments need no request, so they are written from the message.
        """
        if record.get("attachments") and self.carries(record):
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
            if not _placeable(attachment):
                where = f"message {message['message_id']} of session {message['session_id']}"
                self._tap.record_checks.skip(self.name, "id", attachment.get("id"), where)
                continue
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

    def write_from_message(self, message: dict[str, t.Any], downloads: list[Download | None] | None = None) -> None:
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


def _placeable(attachment: dict[str, t.Any]) -> bool:
    """Say whether an attachment has the id that keys its record and names its file."""
    return missing_key("attachments", attachment) is None


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
