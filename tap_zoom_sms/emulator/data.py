"""The emulator's account: a deterministic data set, generated lazily, plus what admins add.

Only one timestamp per session is kept in memory (its last message time, for the
session list); a session's messages are generated again from its seed whenever
they are asked for. A million messages are served in the memory of their sessions'
index, and the same seed always gives the same account.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
import threading
import typing as t
from dataclasses import dataclass, field

UTC = dt.timezone.utc
SESSION_TYPES = (("user", 0.6), ("call_queue", 0.25), ("auto_receptionist", 0.15))
OWNER_TYPES = {"user": "user", "call_queue": "callQueue", "auto_receptionist": "autoReceptionist"}
TEXTS = (
    "Hi, is my order ready?",
    "Yes, you can pick it up after 3pm.",
    "",
    "Merci beaucoup ! À bientôt 👋",
    "配送状況を教えてください",
    "Your appointment is confirmed for Tuesday.",
    "STOP",
    "Can you send the invoice again?",
)
FILE_TYPES = ("PNG", "GIF", "JPG/JPEG", "AUDIO", "VIDEO", "OTHER")


def _id(*parts: object, length: int = 32) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


#: The owner of the user-level endpoints' ``me`` (and of sessions added without one).
ME_OWNER = _id("u0", length=22)


def file_bytes(attachment_id: str, size: int) -> bytes:
    """Return the content of an attachment file: ``size`` bytes that depend only on its id."""
    block = hashlib.sha256(attachment_id.encode()).digest() * 64  # 2 KiB
    return (block * (size // len(block) + 1))[:size]


def fmt(value: dt.datetime) -> str:
    """Format as Zoom does: ``yyyy-MM-ddTHH:mm:ssZ``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def month_starts(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Return the first instant of every month that begins within ``(start, end]``."""
    out: list[dt.datetime] = []
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        first = dt.datetime(year, month, 1, tzinfo=UTC)
        if first > end:
            return out
        out.append(first)


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate: sizes, time span and seed."""

    seed: int = 7
    sessions: int = 200
    engagements: int = 60
    months: int = 13
    #: when set, the data spans this many days instead of ``months`` (a dense account of a few weeks)
    days: int = 0
    #: the end of the generated data (default: when the emulator starts)
    anchor: dt.datetime | None = None
    users: int = 12
    #: share of sessions with a burst of 120-260 messages (several pages in one month)
    busy_share: float = 0.1
    #: share of sessions whose few messages lie months apart
    long_share: float = 0.2
    #: when set, every session has exactly this many messages within three days instead (memory benchmarks)
    messages_per_session: int = 0


@dataclass
class _Session:
    index: int
    session_id: str
    session_type: str
    owner_id: str
    last: dt.datetime


@dataclass
class Account:
    """The sessions, messages and engagements of one emulated Zoom account."""

    spec: DatasetSpec = field(default_factory=DatasetSpec)

    def __post_init__(self) -> None:
        """Index every session by its last message time (generating each once)."""
        self.anchor = (self.spec.anchor or dt.datetime.now(UTC)).replace(microsecond=0)
        self.start = self.anchor - dt.timedelta(days=self.spec.days or round(30.44 * self.spec.months))
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._added: dict[str, list[dict[str, t.Any]]] = {}
        self._deleted: set[str] = set()
        self._index: list[tuple[dt.datetime, str]] = []
        self._boundaries = month_starts(self.start, self.anchor)
        for i in range(self.spec.sessions):
            session = self._make_session(i)
            self._sessions[session.session_id] = session
            self._index.append((session.last, session.session_id))
        self._index.sort()
        self._engagements = [self._make_engagement(i) for i in range(self.spec.engagements)]
        self._completed_late: set[str] = set()
        #: the messages of fixed-size sessions, generated once (see messages)
        self._generated: dict[int, list[dict[str, t.Any]]] = {}
        #: per session, the times of its sent and of its received messages (built on first use)
        self._activity: dict[str, tuple[list[str], list[str]]] = {}

    # --- generation -----------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random(_id(self.spec.seed, *parts))  # noqa: S311 (test data, not secrets)

    def _make_session(self, i: int) -> _Session:
        rng = self._rng("session", i)
        kind = rng.choices(SESSION_TYPES, weights=[w for _, w in SESSION_TYPES])[0][0]
        owner = f"u{rng.randrange(self.spec.users)}" if kind == "user" else f"{kind[:2]}{rng.randrange(3)}"
        session = _Session(i, _id(self.spec.seed, "sid", i), kind, _id(owner, length=22), self.anchor)
        session.last = dt.datetime.fromisoformat(self._times(session)[-1].replace("Z", "+00:00"))
        return session

    def _times(self, session: _Session) -> list[str]:
        """The message times of a generated session, oldest first (with repeats)."""
        rng = self._rng("times", session.index)
        span = (self.anchor - self.start).total_seconds() - 60
        if count := self.spec.messages_per_session:
            base = self.start + dt.timedelta(seconds=rng.uniform(0, span - 86400 * 3))
            return sorted(fmt(base + dt.timedelta(seconds=rng.uniform(0, 86400 * 3))) for _ in range(count))
        shape = rng.random()
        if shape < self.spec.busy_share:  # busy: several pages within one month
            base = self.start + dt.timedelta(seconds=rng.uniform(0, span - 86400 * 3))
            seconds = sorted(rng.uniform(0, 86400 * 3) for _ in range(rng.randint(120, 260)))
            times = [base + dt.timedelta(seconds=s) for s in seconds]
        elif shape < self.spec.busy_share + self.spec.long_share:  # long-lived: a few messages months apart
            times = sorted(self.start + dt.timedelta(seconds=rng.uniform(0, span)) for _ in range(rng.randint(3, 12)))
        else:  # an ordinary conversation over a few hours or days
            base = self.start + dt.timedelta(seconds=rng.uniform(0, span - 86400 * 5))
            times = sorted(base + dt.timedelta(seconds=rng.uniform(0, 86400 * 5)) for _ in range(rng.randint(1, 15)))
        out = [fmt(x) for x in times]
        if self._boundaries and rng.random() < 0.15:  # a message on a month boundary
            boundary = rng.choice(self._boundaries)
            out.append(fmt(boundary))
            if rng.random() < 0.5:
                out.append(fmt(boundary - dt.timedelta(seconds=1)))
        if rng.random() < 0.1:  # a message at midnight
            day = dt.datetime.fromisoformat(out[0].replace("Z", "+00:00")).replace(hour=0, minute=0, second=0)
            out.append(fmt(day + dt.timedelta(days=1)))
        if rng.random() < 0.2:  # several messages in one second
            out.extend([rng.choice(out)] * rng.randint(1, 3))
        return sorted(x for x in out if x <= fmt(self.anchor - dt.timedelta(seconds=60))) or [out[0]]

    def _participant(self, session: _Session, owner: bool) -> dict[str, t.Any]:
        if owner:
            return {
                "display_name": f"{session.session_type.replace('_', ' ').title()} {session.owner_id[:4]}",
                "owner": {"id": session.owner_id, "type": OWNER_TYPES[session.session_type]},
                "phone_number": f"+1650555{int(session.owner_id[:6], 16) % 10000:04d}",
                "is_session_owner": True,
            }
        return {
            "display_name": f"Customer {session.index}",
            "phone_number": f"1408{session.index % 10_000_000:07d}",  # no "+": Zoom varies
            "is_session_owner": False,
        }

    def _message(self, session: _Session, k: int, when: str, rng: random.Random) -> dict[str, t.Any]:
        owner, customer = self._participant(session, True), self._participant(session, False)
        inbound = rng.random() < 0.55
        group = rng.random() < 0.08
        files = rng.choice((1, 1, 2, 3)) if rng.random() < 0.12 else 0
        sender, receiver = (customer, owner) if inbound else (owner, customer)
        to_members = [{k2: v for k2, v in receiver.items() if k2 != "is_session_owner"}]
        if group:
            to_members += [
                {"phone_number": f"1408{(session.index + j) % 10_000_000:07d}", "display_name": f"Guest {j}"}
                for j in range(1, rng.randint(2, 4))
            ]
        message_id = _id(session.session_id, "m", k, length=22)
        message: dict[str, t.Any] = {
            "message_id": message_id,
            "date_time": when,
            "direction": "In" if inbound else "Out",
            "message": rng.choice(TEXTS),
            "message_type": (4 if files else 3) if group else (2 if files else 1),
            "sender": {k2: v for k2, v in sender.items() if k2 != "is_session_owner"},
            "to_members": to_members,
            "attachments": [
                {
                    "id": _id(message_id, "f", j, length=22),
                    "name": f"file-{j}.{rng.choice(('jpg', 'png', 'mp4', 'pdf'))}",
                    "size": rng.randint(1_000, 300_000),
                    "type": rng.choice(FILE_TYPES),
                    "download_url": f"/file/download/{_id(message_id, 'f', j, length=22)}",
                }
                for j in range(files)
            ],
        }
        if rng.random() < 0.03:
            message["undocumented_flag"] = {"since": "a newer API version"}
        return message

    def _make_engagement(self, i: int) -> dict[str, t.Any]:
        rng = self._rng("engagement", i)
        span = (self.anchor - self.start).total_seconds()
        start = self.start + dt.timedelta(seconds=rng.uniform(0, span - 120))
        end = start + dt.timedelta(seconds=rng.uniform(60, 3 * 86400))
        if rng.random() < 0.1:  # still open: published only once completed
            start = self.anchor - dt.timedelta(seconds=rng.uniform(3600, 48 * 3600))
            end = self.anchor + dt.timedelta(seconds=rng.uniform(3600, 10 * 3600))
        sent, received = rng.randint(0, 20), rng.randint(1, 20)
        return {
            "direction": rng.choice(("inbound", "outbound")),
            "engagement_id": _id(self.spec.seed, "engagement", i, length=22),
            "contact_center_number": "+16505550100",
            "start_time": fmt(start),
            "end_time": fmt(end),
            "consumer_number": f"+1408555{i % 10000:04d}",
            "consumer_display_name": f"Consumer {i}",
            "queues": [
                {"queue_id": f"q{i % 3}", "cc_queue_id": _id("queue", i % 3, length=22), "queue_name": "Support"}
            ],
            "agents": [{"user_id": _id("agent", i % 5, length=22), "display_name": f"Agent {i % 5}"}],
            "country_name": rng.choice(("United States", "Canada", "France")),
            "sms_types": ["sms", "mms"] if rng.random() < 0.2 else ["sms"],
            "total_sent_messages": sent,
            "total_received_messages": received,
            "total_sent_files": rng.randint(0, 2),
            "total_received_files": rng.randint(0, 2),
            "_completed_at": fmt(end),
        }

    # --- reading ----------------------------------------------------------
    def session_record(self, session_id: str, *, account_view: bool = True) -> dict[str, t.Any]:
        """Return a session as the session lists show it."""
        session = self._sessions[session_id]
        participants = [self._participant(session, True), self._participant(session, False)]
        if account_view and session.index % 17 == 5:
            participants[0]["extension_status"] = "deleted"
            participants[0]["extension_deleted_time"] = fmt(session.last)
        return {
            "session_id": session_id,
            "session_type": session.session_type,
            "last_access_time": fmt(session.last),
            "participants": participants,
        }

    def sessions_between(
        self, lo: dt.datetime, hi: dt.datetime, session_type: str, owner_id: str | None = None
    ) -> list[str]:
        """Return the ids of sessions whose last message lies in ``[lo, hi]``, oldest first."""
        with self._lock:
            left = bisect.bisect_left(self._index, (lo, ""))
            right = bisect.bisect_right(self._index, (hi, "\uffff"))
            found = [sid for _, sid in self._index[left:right] if sid not in self._deleted]
        return [
            sid
            for sid in found
            if session_type in ("all", self._sessions[sid].session_type)
            and (owner_id is None or self._sessions[sid].owner_id == owner_id)
        ]

    def sessions_active(
        self,
        lo: dt.datetime,
        hi: dt.datetime,
        direction: str,
        session_type: str,
        owner_id: str | None = None,
        *,
        under_report: float = 0.0,
        spare_last: bool = False,
    ) -> list[str]:
        """Return the ids of sessions that sent ("Out") or received ("In") a message in ``[lo, hi]``.

        This is what Zoom documents for ``filter_type=sent_message_time`` and
        ``received_message_time``. ``under_report`` leaves out that share of
        (session, month) pairs, drawn from a hash, for the tap's fallback to be tested;
        ``spare_last`` keeps each session's last month (so only a walk of its history sees it).
        """
        low, high = fmt(lo), fmt(hi)
        found = []
        for sid in self.sessions_between(
            self.start - dt.timedelta(days=1), dt.datetime.max.replace(tzinfo=UTC), session_type, owner_id
        ):
            times = self._activity_of(sid)[0 if direction == "Out" else 1]
            position = bisect.bisect_left(times, low)
            if position < len(times) and times[position] <= high:
                month = times[position][:7]
                last = spare_last and month == fmt(self._sessions[sid].last)[:7]
                if (
                    under_report
                    and not last
                    and int(_id("under", sid, month, length=8), 16) / 0xFFFFFFFF < under_report
                ):
                    continue
                found.append(sid)
        return found

    def _activity_of(self, session_id: str) -> tuple[list[str], list[str]]:
        with self._lock:
            cached = self._activity.get(session_id)
        if cached is None:
            messages = self.messages(session_id)
            cached = (
                sorted(m["date_time"] for m in messages if m["direction"] == "Out"),
                sorted(m["date_time"] for m in messages if m["direction"] == "In"),
            )
            with self._lock:
                self._activity[session_id] = cached
        return cached

    def has_session(self, session_id: str) -> bool:
        """Say whether the session exists (and was not deleted)."""
        return session_id in self._sessions and session_id not in self._deleted

    def messages(self, session_id: str) -> list[dict[str, t.Any]]:
        """Return every message of a session, oldest first (generated on demand)."""
        session = self._sessions[session_id]
        out: list[dict[str, t.Any]] = []
        if session.index >= 0:
            out = list(self._generated_messages(session))
        with self._lock:
            out += self._added.get(session_id, [])
        return out

    def _generated_messages(self, session: _Session) -> list[dict[str, t.Any]]:
        """Generate a session's messages from its seed; those of fixed-size sessions once, then keep them.

        Each page of a session's details generates its messages again: cheap for the usual
        shapes, but a page of a 100,000-message session would take a second of the benchmark's CPU.
        """
        with self._lock:
            kept = self._generated.get(session.index)
        if kept is not None:
            return kept
        rng = self._rng("messages", session.index)
        made = [self._message(session, k, when, rng) for k, when in enumerate(self._times(session))]
        if self.spec.messages_per_session:
            with self._lock:
                self._generated[session.index] = made
        return made

    def engagements(self) -> list[dict[str, t.Any]]:
        """Return the completed engagements (Zoom publishes only those), without internals."""
        now = fmt(dt.datetime.now(UTC))
        with self._lock:
            late = set(self._completed_late)
        return [
            {k: v for k, v in e.items() if not k.startswith("_")}
            for e in self._engagements
            if e["_completed_at"] <= now or e["engagement_id"] in late
        ]

    def pending_engagements(self) -> int:
        """Count engagements not yet completed."""
        return self.spec.engagements - len(self.engagements())

    # --- admin ------------------------------------------------------------
    def add_message(self, session_id: str | None, when: dt.datetime, text: str = "added") -> dict[str, t.Any]:
        """Add a message "now" (or at ``when``), to a session or to a new one."""
        with self._lock:
            if session_id is None or session_id not in self._sessions:
                n = len(self._sessions)
                session_id = session_id or _id(self.spec.seed, "added-session", n)
                owner = ME_OWNER
                self._sessions[session_id] = _Session(-1 - n, session_id, "user", owner, when)
            session = self._sessions[session_id]
            added = self._added.setdefault(session_id, [])
            rng = self._rng("added", session_id, len(added))
            message = self._message(session, 10_000 + len(added), fmt(when), rng)
            message["message"] = text
            added.append(message)
            self._activity.pop(session_id, None)
            old = (session.last, session_id)
            position = bisect.bisect_left(self._index, old)
            if position < len(self._index) and self._index[position] == old:
                del self._index[position]
            session.last = max(session.last, when) if session.index >= 0 or len(added) > 1 else when
            bisect.insort(self._index, (session.last, session_id))
            return {**message, "session_id": session_id}

    def delete_session(self, session_id: str) -> None:
        """Make a session vanish, as retention does."""
        with self._lock:
            self._deleted.add(session_id)

    def complete_engagements(self) -> int:
        """Complete every pending engagement; return how many."""
        now = fmt(dt.datetime.now(UTC))
        with self._lock:
            pending = [e["engagement_id"] for e in self._engagements if e["_completed_at"] > now]
            self._completed_late.update(pending)
        return len(pending)

    def truth(self) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
        """Yield ``(stream, record)`` for everything the account holds now, as the tap emits it."""
        with self._lock:
            session_ids = [sid for _, sid in self._index if sid not in self._deleted]
        for sid in session_ids:
            yield "sms_sessions", self.session_record(sid)
            for message in self.messages(sid):
                yield "sms_messages", {**message, "session_id": sid}
                for attachment in message["attachments"]:
                    yield (
                        "attachments",
                        {
                            **attachment,
                            "message_id": message["message_id"],
                            "session_id": sid,
                            "date_time": message["date_time"],
                        },
                    )
        for engagement in self.engagements():
            yield "contact_center_sms", engagement
