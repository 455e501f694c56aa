"""The emulator's HTTP server: Zoom's endpoints, auth, paging, limits and faults on 127.0.0.1."""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import time
import typing as t
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pendulum

from tap_zoom_sms.emulator.data import ME_OWNER, Account, DatasetSpec, file_bytes, fmt
from tap_zoom_sms.emulator.malform import malform

UTC = dt.timezone.utc
PHONE_LIMITS = {"page_size": 30, "max": 100}
#: API requests whose queries the stats keep (for tests that check what was asked)
LOG_SIZE = 100_000
CC_LIMITS = {"page_size": 10, "max": 100}
#: How often a background-thread emulator looks for a stop request: stop() waits up to this long (the
#: standard library's default, 0.5 s, made each of the test suite's many emulators cost half a second).
SHUTDOWN_POLL_SECONDS = 0.05
ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    # (name, path pattern, rate-limit label, handler)
    ("sessions", re.compile(r"^/v2/phone/sms/sessions$"), "Medium", "_sessions"),
    ("session_sync", re.compile(r"^/v2/phone/sms/sessions/(?P<sid>[^/]+)/sync$"), "Medium", "_session_sync"),
    ("message", re.compile(r"^/v2/phone/sms/sessions/(?P<sid>[^/]+)/messages/(?P<mid>[^/]+)$"), "Medium", "_message"),
    ("session_details", re.compile(r"^/v2/phone/sms/sessions/(?P<sid>[^/]+)$"), "Medium", "_details"),
    ("user_sessions_sync", re.compile(r"^/v2/phone/users/(?P<uid>[^/]+)/sms/sessions/sync$"), "Medium", "_user_sync"),
    ("user_sessions", re.compile(r"^/v2/phone/users/(?P<uid>[^/]+)/sms/sessions$"), "Medium", "_user_sessions"),
    ("contact_center_sms", re.compile(r"^/v2/contact_center/sms$"), "Heavy", "_contact_center"),
]
#: The key of the records array in the pages of each list route.
RECORDS_KEYS = {
    "sessions": "sms_sessions",
    "user_sessions": "sms_sessions",
    "session_details": "sms_histories",
    "contact_center_sms": "sms",
}
#: How a malformed page is answered (``malformed_page_shape``): its records array null, missing,
#: a string or an object; or its next page token a number (on pages that have one).
MALFORMED_SHAPES = ("null", "missing", "string", "object", "token")


@dataclass
class EmulatorConfig:
    """How the emulator behaves; every field can be changed at run time via /_admin/config."""

    account_id: str = "emulator-account"
    client_id: str = "emulator-client"
    client_secret: str = "emulator-secret"  # noqa: S105 (a local fake's credentials)
    token_ttl: int = 3599
    #: API requests one access token serves before Zoom revokes it (0: no limit); Zoom may
    #: revoke or rotate a token at any time, and this makes it happen mid-run, deterministically
    token_max_uses: int = 0
    page_token_ttl: int = 900
    #: per-second limits per label, and the daily cap of Heavy requests (0: no limit)
    medium_qps: float = 0
    heavy_qps: float = 0
    heavy_daily: int = 0
    #: "seconds", "http-date", "iso", "none", or "mixed" (a seeded choice per 429)
    retry_after: str = "mixed"
    #: share of API requests answered with a fault, the kinds to draw from, and their seed
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: ["http_500", "drop", "truncated"])
    fault_seed: int = 1
    latency_ms: float = 0.0
    #: lifetime of the download URLs in message lists (GET one message always gives an hour);
    #: 0 or less hands out URLs that have already expired
    list_download_url_ttl: int = 3600
    #: share of file downloads answered 500 (seeded like the API faults)
    file_fault_rate: float = 0.0
    #: Zoom's clock less the real one, in seconds: its Date headers, default ranges and
    #: the time of messages added without one (negative: Zoom runs behind the tap)
    clock_skew_seconds: float = 0.0
    #: extra latency, in ms, for one route ("sessions", "session_details", ...), "token" or "file_download"
    endpoint_latency_ms: dict[str, float] = field(default_factory=dict)
    #: page tokens that lead nowhere new, for one route (page_token_loop_route): "repeat" gives back
    #: the token it was given; "cycle" goes back to the first token from the third page (A, B, A, B, ...)
    page_token_loop: str = ""
    #: share of (session, month) pairs the sent_message_time and received_message_time lists leave
    #: out (0: they list what Zoom documents), for the tap's check of those filters
    activity_under_report: float = 0.0
    #: leave each session's last month in those lists (so only the sample check can see the gaps)
    activity_under_report_spares_last: bool = False
    page_token_loop_route: str = "sessions"  # noqa: S105 (a route name, not a secret)
    #: share of the records served changed as a hostile Zoom would (see :mod:`.malform`), seeded by fault_seed
    malformed_share: float = 0.0
    #: the ways to change them (default: every way of :data:`.malform.KINDS`)
    malformed_kinds: list[str] = field(default_factory=list)
    #: list routes (keys of RECORDS_KEYS) whose pages that hold records are answered malformed, a 200
    #: whose records array is as ``malformed_page_shape`` says (see MALFORMED_SHAPES); "sessions"
    #: includes the sent_message_time and received_message_time lists
    malformed_page_routes: list[str] = field(default_factory=list)
    malformed_page_shape: str = "null"
    #: times each such page is answered so, before it is answered right (N)
    malformed_page_times: int = 1
    #: how many pages of each route are answered so, the first asked (0: every page that holds records)
    malformed_page_count: int = 0


class Stats:
    """Request counters, by endpoint, status and fault."""

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            self.endpoints: collections.Counter[str] = collections.Counter()
            self.statuses: collections.Counter[str] = collections.Counter()
            self.faults: collections.Counter[str] = collections.Counter()
            self.rate_limited: collections.Counter[str] = collections.Counter()
            #: requests as they arrive (before any latency), by route, "token" or "file_download"
            self.arrivals: collections.Counter[str] = collections.Counter()
            self.tokens_issued = 0
            self.label_times: dict[str, tuple[float, float, int]] = {}
            self.log: collections.deque[tuple[str, dict[str, list[str]]]] = collections.deque(maxlen=LOG_SIZE)

    def record(self, name: str, query: dict[str, list[str]]) -> None:
        """Count an API request of route ``name`` and keep its query (the latest LOG_SIZE of them)."""
        with self._lock:
            self.endpoints[name] += 1
            self.log.append((name, query))

    def requests(self, name: str | None = None) -> list[dict[str, list[str]]]:
        """Return the queries of the API requests kept, of route ``name`` (or all), oldest first."""
        with self._lock:
            return [query for route, query in self.log if name in (None, route)]

    def count_token(self) -> None:
        """Count an issued access token."""
        with self._lock:
            self.tokens_issued += 1

    def mark(self, label: str) -> None:
        """Note the time of a request of rate-limit ``label`` (for request rates)."""
        now = time.monotonic()
        with self._lock:
            first, _, count = self.label_times.get(label, (now, now, 0))
            self.label_times[label] = (first, now, count + 1)

    def rate(self, label: str) -> float:
        """Return the requests per second of ``label``, from its first request to its last."""
        with self._lock:
            first, last, count = self.label_times.get(label, (0.0, 0.0, 0))
        return (count - 1) / (last - first) if count > 1 and last > first else 0.0

    def count(self, counter: str, key: str) -> None:
        """Add one to ``counter[key]``."""
        with self._lock:
            getattr(self, counter)[key] += 1

    def snapshot(self) -> dict[str, t.Any]:
        """Return the counters as JSON-ready dicts."""
        with self._lock:
            return {
                "requests": dict(self.endpoints),
                "total_requests": sum(self.endpoints.values()),
                "statuses": dict(self.statuses),
                "faults": dict(self.faults),
                "rate_limited": dict(self.rate_limited),
                "tokens_issued": self.tokens_issued,
                "arrivals": dict(self.arrivals),
            }


class _QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback for a connection it dropped on purpose."""

    daemon_threads = True

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        pass


class _ZoomError(Exception):
    def __init__(self, status: int, body: dict[str, t.Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def _zoom_error(status: int, code: int, message: str) -> _ZoomError:
    return _ZoomError(status, {"code": code, "message": message})


class Emulator:
    """A Zoom API emulator on 127.0.0.1, started in a thread (or by ``zoom-sms-emulator``)."""

    def __init__(self, spec: DatasetSpec | None = None, config: EmulatorConfig | None = None, port: int = 0) -> None:
        """Generate the account; the server starts with :meth:`start`."""
        self.account = Account(spec or DatasetSpec())
        self.config = config or EmulatorConfig()
        self.stats = Stats()
        self._tokens: dict[str, float] = {}
        self._token_uses: collections.Counter[str] = collections.Counter()
        self._secret = hashlib.sha256(f"emulator-{self.account.spec.seed}".encode()).digest()
        self._lock = threading.Lock()
        self._recent: dict[str, collections.deque[float]] = {
            "Medium": collections.deque(),
            "Heavy": collections.deque(),
        }
        self._heavy_today = 0
        #: per looping query, the first two tokens it gave (A and B), given again as they were
        self._first_tokens: dict[str, list[str]] = {}
        #: per route, the times each of its malformed pages (by path and whole query) was answered so
        self._malformed: dict[str, dict[str, int]] = {}
        #: the clock of the per-second limits (a test may stop it, to make a burst land in one second)
        self.monotonic: t.Callable[[], float] = time.monotonic
        self._faults = random.Random(self.config.fault_seed)  # noqa: S311
        self._server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None

    def now(self) -> dt.datetime:
        """Return the time on the emulator's (Zoom's) clock, to the second."""
        return (dt.datetime.now(UTC) + dt.timedelta(seconds=self.config.clock_skew_seconds)).replace(microsecond=0)

    def delay(self, name: str) -> None:
        """Count the arrival of a request of route ``name``, then wait as long as the latency settings say."""
        self.stats.count("arrivals", name)
        seconds = (self.config.latency_ms + self.config.endpoint_latency_ms.get(name, 0.0)) / 1000
        if seconds > 0:
            time.sleep(seconds)

    def reset_paging(self) -> None:
        """Forget the first tokens the looping modes go back to."""
        with self._lock:
            self._first_tokens.clear()

    def loop_token(self, name: str, query: dict[str, list[str]], body: dict[str, t.Any]) -> None:
        """Replace the next page token of ``body`` as ``page_token_loop`` says (for route ``name``)."""
        mode, given = self.config.page_token_loop, query.get("next_page_token", [""])[0]
        if not mode or name != self.config.page_token_loop_route or not body.get("next_page_token") or not given:
            return
        if mode == "repeat":
            body["next_page_token"] = given
            return
        key = self._query_key(query, name)
        with self._lock:
            tokens = self._first_tokens.setdefault(key, [given])
            if given != tokens[0]:
                body["next_page_token"] = tokens[0]  # back to the first: A, B, A, B, ...
            elif len(tokens) > 1:
                body["next_page_token"] = tokens[1]  # the same B each time, to the letter
            else:
                tokens.append(body["next_page_token"])

    def reset_malformed(self) -> None:
        """Forget the pages answered malformed (the next ones asked are malformed again)."""
        with self._lock:
            self._malformed.clear()

    def malform_page(self, name: str, path: str, query: dict[str, list[str]], body: dict[str, t.Any]) -> None:
        """Answer a page of route ``name`` malformed, as the ``malformed_page_*`` settings say.

        Only pages that hold records (for "token": that have a next page) are: a page
        answered malformed on an empty list would lose nothing. A page is told apart by
        its path and whole query, page token included, so asking it again (as a
        re-read does) counts towards its ``malformed_page_times``.
        """
        config, key = self.config, RECORDS_KEYS.get(name)
        if key is None or name not in config.malformed_page_routes:
            return
        shape = config.malformed_page_shape
        if not body.get("next_page_token" if shape == "token" else key):
            return
        page = json.dumps([path, {k: sorted(v) for k, v in query.items()}], sort_keys=True)
        with self._lock:
            answered = self._malformed.setdefault(name, {})
            if page not in answered and 0 < config.malformed_page_count <= len(answered):
                return
            if answered.get(page, 0) >= config.malformed_page_times:
                return
            answered[page] = answered.get(page, 0) + 1
        self.stats.count("faults", f"malformed_page {name}")
        if shape == "token":
            body["next_page_token"] = 4242
        elif shape == "missing":
            del body[key]
        else:
            body[key] = {"null": None, "string": json.dumps(body[key]), "object": {}}[shape]

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:8765."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def tap_config(self, **overrides: t.Any) -> dict[str, t.Any]:
        """Return a tap config that reads everything this emulator holds."""
        config = {
            "account_id": self.config.account_id,
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            "start_date": fmt(self.account.start - dt.timedelta(days=1)),
            "api_url": f"{self.url}/v2",
            "oauth_url": f"{self.url}/oauth/token",
        }
        config.update(overrides)
        return config

    def start(self) -> Emulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), name="zoom-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving (if it was) and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Emulator:
        """Start on entering a ``with`` block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop on leaving it."""
        self.stop()

    # --- auth ---------------------------------------------------------------
    def issue_token(self, authorization: str, form: dict[str, list[str]]) -> dict[str, t.Any]:
        """Answer POST /oauth/token (account credentials grant, Basic auth)."""
        expected = base64.b64encode(f"{self.config.client_id}:{self.config.client_secret}".encode()).decode()
        if not hmac.compare_digest(authorization, f"Basic {expected}"):
            raise _ZoomError(400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        if form.get("grant_type") != ["account_credentials"]:
            raise _ZoomError(400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"})
        if form.get("account_id") != [self.config.account_id]:
            raise _ZoomError(400, {"reason": "Invalid account_id", "error": "invalid_request"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.time() + self.config.token_ttl
        self.stats.count_token()
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.config.token_ttl,
            "scope": "phone:read:admin phone_sms:read:admin contact_center_sms:read:admin",
        }

    def issued_tokens(self) -> list[str]:
        """Return every access token issued (for tests that scan output for secrets)."""
        with self._lock:
            return list(self._tokens)

    def check_token(self, authorization: str, *, contact_center: bool) -> None:
        """Raise Zoom's 401 (in the endpoint's shape) for a missing, unknown, expired or revoked token."""
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            expiry = self._tokens.get(token)
            self._token_uses[token] += 1
            revoked = 0 < self.config.token_max_uses < self._token_uses[token]
        if expiry is None or expiry < time.time() or revoked:
            if contact_center:
                raise _ZoomError(401, {"status": False, "errorCode": 401})
            raise _zoom_error(401, 124, "Invalid access token.")

    # --- attachment files ---------------------------------------------------
    def file_jwt(self, attachment: dict[str, t.Any], expiry: int) -> str:
        """Sign a download JWT for one attachment: its id, size and expiry."""
        claims = {"aid": attachment["id"], "size": attachment["size"], "exp": expiry}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def serve_file(self, attachment_id: str, query: dict[str, list[str]]) -> bytes:
        """Return a file's bytes for a valid, unexpired JWT naming it; else Zoom's 401."""
        refused = _zoom_error(401, 124, "Invalid access token.")
        try:
            body = jwt.decode(query["jwt"][0], self._secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            self.stats.count("statuses", "file_expired")
            raise refused from None
        except (KeyError, jwt.InvalidTokenError):
            raise refused from None
        if body.get("aid") != attachment_id:
            raise refused
        with self._lock:
            fault = self.config.file_fault_rate and self._faults.random() < self.config.file_fault_rate
        if fault:
            self.stats.count("faults", "file_500")
            raise _zoom_error(500, 500, "Internal error")
        self.stats.count("endpoints", "file_download")
        return file_bytes(attachment_id, int(body["size"]))

    # --- rate limits --------------------------------------------------------
    def check_rate(self, label: str) -> None:
        """Raise 429 when a label's per-second limit, or the daily Heavy cap, is exceeded."""
        limit = self.config.medium_qps if label == "Medium" else self.config.heavy_qps
        now = self.monotonic()
        with self._lock:
            if label == "Heavy" and self.config.heavy_daily:
                if self._heavy_today >= self.config.heavy_daily:
                    self.stats.count("rate_limited", "Daily-limit")
                    raise self._too_many(label, "Daily-limit", self.config.heavy_daily)
                self._heavy_today += 1
            if not limit:
                return
            recent = self._recent[label]
            while recent and recent[0] <= now - 1:
                recent.popleft()
            if len(recent) >= limit:
                self.stats.count("rate_limited", f"QPS {label}")
                raise self._too_many(label, "QPS", limit)
            recent.append(now)

    def _too_many(self, label: str, kind: str, limit: float) -> _ZoomError:
        headers = {
            "X-RateLimit-Category": label,
            "X-RateLimit-Type": kind,
            "X-RateLimit-Limit": str(int(limit)),
            "X-RateLimit-Remaining": "0",
        }
        now = dt.datetime.now(UTC)
        if kind == "Daily-limit":
            reset = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            headers["Retry-After"] = fmt(reset)
            message = "You have reached the maximum daily rate limit for this API."
        else:
            form = self.config.retry_after
            if form == "mixed":
                form = self._faults.choice(("seconds", "http-date", "iso", "none"))
            if form == "seconds":
                headers["Retry-After"] = "1"
            elif form == "http-date":
                headers["Retry-After"] = email.utils.format_datetime(now + dt.timedelta(seconds=1), usegmt=True)
            elif form == "iso":
                headers["Retry-After"] = fmt(now + dt.timedelta(seconds=1))
            message = "You have reached the maximum per-second rate limit for this API. Try again later."
        return _ZoomError(429, {"code": 429, "message": message}, headers)

    def draw_fault(self) -> tuple[str, int] | None:
        """Return the kind of fault to inject into this request, and a 5xx status, if any (seeded)."""
        if not self.config.fault_rate:
            return None
        with self._lock:
            if self._faults.random() >= self.config.fault_rate:
                return None
            return self._faults.choice(self.config.fault_kinds), self._faults.choice((500, 502, 503, 504))

    def reset_rate_windows(self) -> None:
        """Forget the requests of the last second (for a test that stops the limits' clock)."""
        with self._lock:
            for recent in self._recent.values():
                recent.clear()

    def reset_daily_limit(self) -> None:
        """Start a new day for the Heavy cap."""
        with self._lock:
            self._heavy_today = 0

    # --- paging -------------------------------------------------------------
    def page(
        self, path: str, query: dict[str, list[str]], items: list[t.Any], limits: dict[str, int]
    ) -> tuple[list[t.Any], str, int]:
        """Cut a page; return it, the next page token ("" on the last page), and the page size.

        A token is bound to its path and query and expires: used elsewhere or late,
        it is refused as Zoom refuses it.
        """
        try:
            asked = int(query.get("page_size", [limits["page_size"]])[0] or limits["page_size"])
        except ValueError:
            raise _zoom_error(400, 300, "Invalid field: page_size") from None
        size = min(max(asked, 1), limits["max"])
        key = self._query_key(query, path)
        offset = 0
        if token := query.get("next_page_token", [""])[0]:
            offset = self._read_token(token, key)
        end = offset + size
        next_token = self._make_token(key, end) if end < len(items) else ""
        return items[offset:end], next_token, size

    def _query_key(self, query: dict[str, list[str]], path: str = "") -> str:
        canonical = {k: sorted(v) for k, v in query.items() if k != "next_page_token"}
        return hashlib.sha256(json.dumps([path, canonical], sort_keys=True).encode()).hexdigest()[:16]

    def _make_token(self, key: str, offset: int) -> str:
        payload = f"{key}.{offset}.{int(time.time() + self.config.page_token_ttl)}"
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:16]
        return base64.urlsafe_b64encode(f"{payload}.{mac}".encode()).decode().rstrip("=")

    def _read_token(self, token: str, expected_key: str) -> int:
        invalid = _zoom_error(400, 300, "The next page token is invalid or expired.")
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            key, offset, expiry, mac = text.split(".")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise invalid from None
        good = hmac.new(self._secret, f"{key}.{offset}.{expiry}".encode(), hashlib.sha256).hexdigest()[:16]
        if not hmac.compare_digest(mac, good) or key != expected_key or int(expiry) < time.time():
            raise invalid
        return int(offset)


def parse_range(
    query: dict[str, list[str]], default: dt.timedelta, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """Read ``from``/``to`` as Zoom does: defaults without them (before ``now``), a month at most, inclusive."""
    now = now or dt.datetime.now(UTC).replace(microsecond=0)
    if "from" not in query and "to" not in query:
        return now - default, now
    if "from" not in query or "to" not in query:
        raise _zoom_error(400, 300, "Requires from and to")
    try:
        lo = _parse_bound(query["from"][0], end=False)
        hi = _parse_bound(query["to"][0], end=True)
    except ValueError:
        raise _zoom_error(400, 300, "Invalid field: from/to") from None
    if hi < lo:
        raise _zoom_error(400, 300, "The to date must be later than the from date")
    cap = pendulum.instance(lo).add(months=1)
    return lo, min(hi, cap)  # a longer range is cut to one month, without a word


def _parse_bound(text: str, *, end: bool) -> dt.datetime:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
        return day + dt.timedelta(days=1, seconds=-1) if end else day
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value.astimezone(UTC)


def _in_range(value: str, lo: dt.datetime, hi: dt.datetime) -> bool:
    return fmt(lo) <= value <= fmt(hi)


class _Api:
    """The endpoint handlers: each takes the query and path groups and returns a JSON body."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self.account = emulator.account

    def _sessions(self, path: str, query: dict[str, list[str]], owner_id: str | None = None) -> dict[str, t.Any]:
        session_type = query.get("session_type", ["user"])[0]  # Zoom's default: user sessions only
        if session_type not in ("all", "user", "call_queue", "auto_receptionist"):
            raise _zoom_error(400, 400, "SMS session type is invalid.")
        filter_type = query.get("filter_type", ["last_message_time"])[0]
        if filter_type not in ("last_message_time", "sent_message_time", "received_message_time"):
            raise _zoom_error(400, 300, "Invalid field: filter_type")
        lo, hi = parse_range(query, dt.timedelta(days=30), self.em.now())
        if filter_type == "last_message_time":
            ids = self.account.sessions_between(lo, hi, session_type, owner_id)
        else:
            direction = "Out" if filter_type == "sent_message_time" else "In"
            config = self.em.config
            ids = self.account.sessions_active(
                lo,
                hi,
                direction,
                session_type,
                owner_id,
                under_report=config.activity_under_report,
                spare_last=config.activity_under_report_spares_last,
            )
        page, token, size = self.em.page(path, query, ids, PHONE_LIMITS)
        records = [self.account.session_record(sid, account_view=owner_id is None) for sid in page]
        if phone := query.get("phone_number", [""])[0]:
            records = [
                r for r in records if any(p["phone_number"].lstrip("+") == phone.lstrip("+") for p in r["participants"])
            ]
        return {"next_page_token": token, "page_size": size, "sms_sessions": self._served("sms_sessions", records)}

    def _user_sessions(self, path: str, query: dict[str, list[str]], uid: str) -> dict[str, t.Any]:
        owner = ME_OWNER if uid == "me" else uid
        return self._sessions(path, query, owner_id=owner)

    def _session(self, sid: str) -> None:
        if not self.account.has_session(sid):
            raise _zoom_error(404, 7013, "Error retrieving SMS history.")

    def _details(self, path: str, query: dict[str, list[str]], sid: str) -> dict[str, t.Any]:
        self._session(sid)
        lo, hi = parse_range(query, dt.timedelta(days=30), self.em.now())
        low, high = fmt(lo), fmt(hi)  # formatted once: a session can hold 100,000 messages
        found = [m for m in self.account.messages(sid) if low <= m["date_time"] <= high]
        sort = query.get("sort", ["1"])[0]
        found.sort(key=lambda m: m["date_time"], reverse=sort == "2")
        page, token, size = self.em.page(path, query, found, PHONE_LIMITS)
        messages = self._served("sms_histories", [self._fresh(m) for m in page])
        return {"next_page_token": token, "page_size": size, "sms_histories": messages}

    def _served(self, records_key: str, records: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
        """Return ``records`` as served: some changed, if ``malformed_share`` is set (see :mod:`.malform`)."""
        config = self.em.config
        share, seed, kinds = config.malformed_share, config.fault_seed, config.malformed_kinds
        return [malform(records_key, record, share, seed, kinds) for record in records] if share else records

    def _fresh(self, message: dict[str, t.Any], ttl: int | None = None) -> dict[str, t.Any]:
        """Give attachments download URLs with a signed JWT that expires (see EmulatorConfig)."""
        if not message["attachments"]:
            return message
        expiry = int(time.time()) + (self.em.config.list_download_url_ttl if ttl is None else ttl)
        return {
            **message,
            "attachments": [
                {**a, "download_url": f"{self.em.url}{a['download_url']}?jwt={self.em.file_jwt(a, expiry)}"}
                for a in message["attachments"]
            ],
        }

    def _message(self, path: str, query: dict[str, list[str]], sid: str, mid: str) -> dict[str, t.Any]:  # noqa: ARG002
        self._session(sid)
        for message in self.account.messages(sid):
            if message["message_id"] == mid:
                return self._served("sms_histories", [self._fresh(message, ttl=3600)])[0]
        raise _zoom_error(404, 7012, "Error retrieving SMS.")

    def _session_sync(self, path: str, query: dict[str, list[str]], sid: str) -> dict[str, t.Any]:  # noqa: ARG002
        self._session(sid)
        sync_type = query.get("sync_type", [""])[0]
        count = int(query.get("count", ["100"])[0])
        if sync_type not in ("FSync", "BSync", "ISync") or not 1 <= count <= 250:
            raise _zoom_error(400, 300, "Invalid field: sync_type or count")
        messages = self.account.messages(sid)
        position = len(messages)
        if sync_type != "FSync":
            try:
                position = int(base64.urlsafe_b64decode(query["sync_token"][0]).decode())
            except (KeyError, ValueError, binascii.Error):
                raise _zoom_error(400, 300, "sync token invalid or expired. Please resync with FSync") from None
        if sync_type == "ISync":
            new = messages[position:]
            if len(new) > count:
                raise _zoom_error(400, 7035, "number of new records exceeds the sync count")
            chunk, cursor = new, len(messages)
        else:
            chunk, cursor = messages[max(0, position - count) : position], max(0, position - count)
        token = base64.urlsafe_b64encode(str(cursor).encode()).decode()
        return {"sms_histories": [self._fresh(m) for m in chunk], "sync_token": token}

    def _user_sync(self, path: str, query: dict[str, list[str]], uid: str) -> dict[str, t.Any]:  # noqa: ARG002
        if query.get("sync_type", [""])[0] not in ("FSync", "BSync", "ISync"):
            raise _zoom_error(400, 300, "Invalid field: sync_type")
        owner = ME_OWNER if uid == "me" else uid
        ids = self.account.sessions_between(self.account.start, dt.datetime.now(UTC), "all", owner)
        count = int(query.get("count", ["100"])[0])
        sessions = []
        for sid in ids[-count:]:
            record = self.account.session_record(sid, account_view=False)
            record["unread_message_count"] = 0
            record["latest_message"] = self.account.messages(sid)[-1]
            sessions.append(record)
        return {"sms_sessions": sessions, "sync_token": base64.urlsafe_b64encode(b"0").decode()}

    def _contact_center(self, path: str, query: dict[str, list[str]]) -> dict[str, t.Any]:
        lo, hi = parse_range(query, dt.timedelta(hours=24), self.em.now())
        filters = {
            "direction": query.get("direction", [None])[0],
            "engagement_id": query.get("engagement_id", [None])[0],
            "consumer_number": query.get("consumer_number", [None])[0],
        }
        found = [
            e
            for e in self.account.engagements()
            if _in_range(e["start_time"], lo, hi) and all(v is None or e[k] == v for k, v in filters.items())
        ]
        if user := query.get("user_id", [None])[0]:
            found = [e for e in found if any(a["user_id"] == user for a in e["agents"])]
        found.sort(key=lambda e: (e["start_time"], e["engagement_id"]))
        page, token, size = self.em.page(path, query, found, CC_LIMITS)
        return {
            "next_page_token": token,
            "page_size": size,
            "total_records": len(found),
            "from": fmt(lo),
            "to": fmt(hi),
            "sms": self._served("sms", page),
        }


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    api = _Api(emulator)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ZoomEmulator/1"
        # one write per response, sent at once: no 40 ms Nagle/delayed-ACK stall per request
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def log_message(self, *args: t.Any) -> None:
            pass

        def date_time_string(self, timestamp: float | None = None) -> str:
            """Date headers on Zoom's clock (see ``clock_skew_seconds``)."""
            if timestamp is None:
                timestamp = time.time() + emulator.config.clock_skew_seconds
            return email.utils.formatdate(timestamp, usegmt=True)

        def _send(
            self,
            status: int,
            body: bytes | dict | list,
            headers: dict[str, str] | None = None,
            *,
            content_type: str = "application/json;charset=UTF-8",
        ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-zm-trackingid", f"EMU_{random.getrandbits(48):012x}")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            emulator.stats.count("statuses", str(status))

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            try:
                if url.path == "/oauth/token":
                    emulator.delay("token")
                    form = parse_qs(body.decode()) or parse_qs(url.query)
                    self._send(200, emulator.issue_token(self.headers.get("Authorization", ""), form))
                elif url.path.startswith("/_admin/"):
                    self._send(200, _admin_post(emulator, url.path, json.loads(body or b"{}")))
                else:
                    self._send(404, {"code": 404, "message": "Not found"})
            except _ZoomError as exc:
                self._send(exc.status, exc.body, exc.headers)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=False)
            if url.path.startswith("/_admin/"):
                self._admin_get(url.path)
                return
            if url.path.startswith("/file/download/"):
                self._file(url.path.removeprefix("/file/download/"), query)
                return
            for name, pattern, label, handler in ROUTES:
                if match := pattern.match(url.path):
                    self._api(name, label, handler, query, match.groupdict())
                    return
            self._send(404, {"code": 404, "message": "Not found"})

        def _api(self, name: str, label: str, handler: str, query: dict, groups: dict[str, str]) -> None:
            url_path = urlsplit(self.path).path
            emulator.stats.record(name, query)
            emulator.stats.mark(label)
            emulator.delay(name)
            try:
                emulator.check_token(self.headers.get("Authorization", ""), contact_center=label == "Heavy")
                emulator.check_rate(label)
                fault, status = emulator.draw_fault() or (None, 0)
                if fault == "drop":
                    emulator.stats.count("faults", fault)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "http_500":
                    emulator.stats.count("faults", fault)
                    self._send(status, b"<html><body><h1>Server Error</h1></body></html>", content_type="text/html")
                    return
                body = getattr(api, handler)(url_path, query, **groups)
                emulator.loop_token(name, query, body)
                emulator.malform_page(name, url_path, query, body)
                if fault == "truncated":
                    emulator.stats.count("faults", fault)
                    data = json.dumps(body).encode()
                    self._send(200, data[: max(1, len(data) // 2)])
                    return
                self._send(200, body)
            except _ZoomError as exc:
                self._send(exc.status, exc.body, exc.headers)

        def _file(self, attachment_id: str, query: dict[str, list[str]]) -> None:
            emulator.stats.mark("Medium")
            emulator.delay("file_download")
            try:
                emulator.check_rate("Medium")
                data = emulator.serve_file(attachment_id, query)
            except _ZoomError as exc:
                self._send(exc.status, exc.body, exc.headers)
                return
            self._send(200, data, content_type="application/octet-stream")

        def _admin_get(self, path: str) -> None:
            if path == "/_admin/stats":
                self._send(200, emulator.stats.snapshot())
            elif path == "/_admin/truth":
                self._send_truth()
            elif path == "/_admin/config":
                self._send(200, asdict(emulator.config))
            else:
                self._send(404, {"code": 404, "message": "Not found"})

        def _send_truth(self) -> None:
            """Stream the ground truth as JSON lines ({"stream", "record"}), chunked."""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            buffer: list[bytes] = []
            for stream, record in emulator.account.truth():
                buffer.append(json.dumps({"stream": stream, "record": record}).encode() + b"\n")
                if len(buffer) >= 500:
                    self._chunk(b"".join(buffer))
                    buffer = []
            self._chunk(b"".join(buffer))
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    return Handler


def _admin_post(emulator: Emulator, path: str, body: dict[str, t.Any]) -> dict[str, t.Any] | list:
    account = emulator.account
    if path == "/_admin/messages":
        when = dt.datetime.fromisoformat(body["at"].replace("Z", "+00:00")) if body.get("at") else None
        created = [
            account.add_message(body.get("session_id"), when or emulator.now(), body.get("text", "added"))
            for _ in range(int(body.get("count", 1)))
        ]
        return created
    if path == "/_admin/engagements/complete":
        return {"completed": account.complete_engagements()}
    if path == "/_admin/sessions/delete":
        account.delete_session(body["session_id"])
        return {"deleted": body["session_id"]}
    if path == "/_admin/stats/reset":
        emulator.stats.reset()
        return emulator.stats.snapshot()
    if path == "/_admin/daily-limit/reset":
        emulator.reset_daily_limit()
        return {"reset": True}
    if path == "/_admin/config":
        for key, value in body.items():
            if not hasattr(emulator.config, key):
                raise _zoom_error(400, 300, f"Unknown setting: {key}")
            if key == "malformed_page_shape" and value not in MALFORMED_SHAPES:
                raise _zoom_error(400, 300, f"Unknown malformed_page_shape: {value}")
            setattr(emulator.config, key, value)
        if "fault_seed" in body:
            emulator._faults.seed(body["fault_seed"])
        if any(key.startswith("malformed_page_") for key in body):
            emulator.reset_malformed()
        return asdict(emulator.config)
    raise _zoom_error(404, 404, "Not found")
