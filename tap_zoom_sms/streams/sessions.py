"""Zoom Phone SMS sessions: listed window by window, each session's messages read with it, bookmarks committed.

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

import datetime as dt
import typing as t
from functools import partial

from tap_zoom_sms.client import ZoomStream
from tap_zoom_sms.discovery.boundary import BoundaryMessages
from tap_zoom_sms.discovery.lists import DiscoveryFellShortError, sessions_path
from tap_zoom_sms.discovery.months import Discovery
from tap_zoom_sms.discovery.sample import SAMPLE_FROM_WINDOWS
from tap_zoom_sms.pagination import WINDOW_READ
from tap_zoom_sms.readahead.prefetch import Beside, Prefetcher
from tap_zoom_sms.readahead.queue import CHILD_CONTEXT_KEY, ReadAhead, WindowEnd
from tap_zoom_sms.readahead.windows import DEPTH as WINDOWS_AHEAD
from tap_zoom_sms.windows import format_zoom_time, month_windows, parse_time

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context

    from tap_zoom_sms.windows import Window


class SessionMessages(t.Protocol):
    """The messages stream, as the sessions stream drives it (see :mod:`tap_zoom_sms.streams.messages`)."""

    selected: bool
    has_selected_descendents: bool
    requests_session: requests.Session
    read_ahead: ReadAhead | None
    boundary: BoundaryMessages | None
    #: runs a request on an idle worker of the read-ahead (see Prefetcher.beside), for a worker's stream
    beside: Beside | None

    def message_times(self, session_id: str, since: str, until: str) -> list[str]:
        """Return the times of the session's messages in ``[since, until]``."""


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
    windows_ahead = WINDOWS_AHEAD  # the next months' lists are read while the workers drain this one

    messages_since: dt.datetime
    #: how this run finds the months of each session's messages (None: the exhaustive walk)
    _discovery: Discovery | None = None
    #: the sessions listed by their last message in the window being read
    _listed: set[str]
    #: sessions active in windows already read whose messages a stream map's filter held back there
    _withheld: set[str]
    #: sessions read ahead of the SDK, and the ends of their windows (see _read)
    _ahead: ReadAhead | None = None
    #: the partition (user) being read, whose bookmark the windows commit
    _context: Context | None = None
    _child_context: dict[str, str] | None = None

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
        self.services.progress.work_begins(self.name)
        state = self.get_context_state(context)
        lookback = dt.timedelta(minutes=self.config["lookback_minutes"])
        start = self.services.start_date
        if bookmark := state.get("replication_key_value"):
            start = max(start, parse_time(bookmark) - lookback)
        self.messages_since = start
        if pending := state.get("messages_since"):
            self.messages_since = max(self.services.start_date, min(parse_time(pending), start))
        self._discovery = None
        messages = self._messages_stream()
        if messages is not None:
            messages.boundary = None
        if self._discovery_mode(state) == "activity":
            # month by month from the messages' lower bound: the months before the bookmark that an
            # interrupted run still owes are read for every session active in them
            start = self.messages_since
            months = list(month_windows(start, self.services.end_date))
            if len(months) > 1:
                # the sample check walks sessions with messages streams of its own (see discovery.sample)
                walker = None
                if messages is not None and len(months) >= SAMPLE_FROM_WINDOWS:
                    walker = partial(self.services.new_stream, type(messages))
                self._discovery = Discovery(self.services, context, stream=self.name, new_walker=walker)
                self._discovery.start_sample(months, self.logger)
                if messages is not None:
                    messages.boundary = BoundaryMessages()
        self._listed, self._withheld = set(), set()
        return self._reading_ahead(month_windows(start, self.services.end_date))

    def _reading_ahead(self, windows: t.Iterator[Window]) -> t.Iterator[Window]:
        """Yield ``windows``, starting each one's activity lists as the paginator moves to it."""
        for window in windows:
            if self._discovery is not None:
                self._discovery.read_ahead(window)
            yield window

    def _messages_stream(self) -> SessionMessages | None:
        """Return the child stream that reads each session's messages (its only child)."""
        return t.cast("SessionMessages | None", next(iter(self.child_streams), None))

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
        read ahead of it has been written, messages and all (see :mod:`tap_zoom_sms.readahead`).
        """
        self._context = context
        messages = self._messages_stream()
        workers = self.services.workers
        if messages is None or workers <= 1 or not (messages.selected or messages.has_selected_descendents):
            for record in super().get_records(context):
                if record is not WINDOW_READ:
                    self._listed.add(record["session_id"])
                    yield record
            return

        def new_fetcher() -> SessionMessages:
            """A worker's messages stream, whose window's newest page an idle worker may read (readahead.bothends)."""
            fetcher = self.services.new_stream(type(messages))
            fetcher.beside = prefetcher.beside
            return fetcher

        prefetcher = Prefetcher(new_fetcher, workers)
        ahead = self._ahead = ReadAhead(prefetcher, commit=self._commit, sync_children=self.sync_children)
        messages.read_ahead, messages.beside = ahead, prefetcher.beside  # (a session no worker began: read here)
        try:
            for record in super().get_records(context):
                if record is WINDOW_READ:
                    # a window's list is read, and its active sessions join the read-ahead next
                    # (on_window_done): hand out the windows before the one still being fetched
                    yield from ahead.window_read()
                    continue
                self._listed.add(record["session_id"])
                yield from ahead.session(record, self._context_for(record) if self.carries(record) else None)
            yield from ahead.drain()
        finally:
            self._ahead = messages.read_ahead = messages.beside = None
            ahead.close()

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
            self.sync_children(self.get_child_context(record, context))
        else:
            self._child_context = None
        return ()

    def _context_for(self, record: dict) -> dict[str, str]:
        """Return the messages' context of a session just listed, in the window being read.

        With discovery, the earlier months of the session were read as the months went
        by, unless a stream map's filter held them back there: then they are read now.
        """
        window = self.current_window
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
                    self._ahead.activity(context)
                else:
                    self.sync_children(context)
        done = WindowEnd(window, last, covered, sampled)
        if self._ahead is not None:
            self._ahead.window_end(done)
        else:
            self._commit(done)

    @staticmethod
    def _contexts(window: Window, session_ids: set[str]) -> list[dict[str, str]]:
        """Return the contexts that read ``window`` for sessions active there and listed in a later window."""
        since, until = format_zoom_time(window.start), format_zoom_time(window.end)
        return [{"session_id": sid, "messages_since": since, "messages_until": until} for sid in sorted(session_ids)]

    def _commit(self, done: WindowEnd) -> None:
        """Advance the bookmark to what ``done.window`` covered: its sessions and messages are all out.

        Once a run has read up to the present, the next run's sessions can only have
        new messages after it (less the look-back), so ``messages_since`` moves up
        too. A run that stopped at an end_date in the past leaves it where it was:
        sessions whose last message lies after end_date were not listed, and their
        earlier messages are still due.
        """
        if self._discovery is not None:
            self._discovery.check_sample(done.window, done.sampled)
        end_date = self.services.end_date
        reached_present = done.last and (end_date is None or done.window.end < end_date)
        # with discovery, every session's messages up to the window's end have been read
        since = done.covered if reached_present or self._discovery is not None else self.messages_since
        if reached_present:
            self.get_context_state(self._context).pop("message_discovery", None)
        self.commit_bookmark(done.covered, self._context, messages_since=format_zoom_time(since))
