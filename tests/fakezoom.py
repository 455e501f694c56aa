"""An in-process fake of the Zoom endpoints the tap reads, for requests-mock.

It answers the way ``shared/zoom-api.md`` says Zoom does, harsh readings included:
ranges longer than a month are cut silently, bounds are inclusive, missing
``from``/``to`` fall back to Zoom's short defaults, ``session_type`` defaults to
``user``, page tokens are bound to their query, and a session is listed only by
its last message. Tests assert completeness against its data.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import typing as t
from dataclasses import dataclass, field

import pendulum

API = "https://api.zoom.test/v2"
OAUTH = "https://zoom.test/oauth/token"
ACCOUNT_ID = "acct-1"
CLIENT_ID = "client-1"
CLIENT_SECRET = "s3cr3t-client-secret-value"
UTC = dt.timezone.utc


def ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def fmt(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_config(**overrides: t.Any) -> dict[str, t.Any]:
    config = {
        "account_id": ACCOUNT_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-12-31T23:59:59Z",
        "api_url": API,
        "oauth_url": OAUTH,
        "medium_requests_per_second": 0,
        "heavy_requests_per_second": 0,
        # these tests count the requests of the exhaustive walk; discovery has its own (test_discovery.py)
        "message_discovery": "exhaustive",
    }
    config.update(overrides)
    return config


@dataclass
class Fault:
    """One bad answer to the first request whose path matches and ``when`` holds."""

    pattern: str
    status: int
    body: dict[str, t.Any] | str | Exception
    when: t.Callable[[t.Any], bool] = lambda request: True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeZoom:
    """The data and behaviour of one fake Zoom account."""

    sessions: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    messages: dict[str, list[dict[str, t.Any]]] = field(default_factory=dict)
    engagements: list[dict[str, t.Any]] = field(default_factory=list)
    token_ttl: int = 3599
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    #: answered instead of the real answer, each once, in order: see :meth:`fail_next`
    faults: list[Fault] = field(default_factory=list)
    #: from this request number on (1-based), answer everything with 403: a run "killed" there
    fail_from_request: int | None = None
    #: answer details pages with ``sync_token`` instead of ``next_page_token``
    token_under_sync_token: bool = False
    #: by records key: changes each record of a page on its way out (what a malformed Zoom would send)
    mangle: dict[str, t.Callable[[dict[str, t.Any]], t.Any]] = field(default_factory=dict)
    #: session details answer oldest first whatever ``sort`` asks (the harsh reading of a parameter)
    ignores_sort: bool = False

    # --- building data -------------------------------------------------
    def add_session(self, session_id: str, session_type: str = "user") -> None:
        self.sessions[session_id] = {
            "session_id": session_id,
            "session_type": session_type,
            "participants": [
                {
                    "display_name": "Agent",
                    "phone_number": "+15550000001",
                    "is_session_owner": True,
                    "owner": {"id": "u1", "type": "user"},
                }
            ],
        }
        self.messages.setdefault(session_id, [])

    def add_message(
        self, session_id: str, when: str, *, attachments: int = 0, text: str = "hi", **extra: t.Any
    ) -> dict[str, t.Any]:
        n = sum(len(m) for m in self.messages.values()) + 1
        message = {
            "message_id": f"m{n:05d}",
            "date_time": when,
            "direction": "In",
            "message": text,
            "message_type": 2 if attachments else 1,
            "sender": {"phone_number": "+15551112222", "display_name": "Customer"},
            "to_members": [{"phone_number": "+15550000001", "owner": {"id": "u1", "type": "user"}}],
            "attachments": [
                {
                    "id": f"a{n:05d}-{i}",
                    "name": f"file{i}.jpg",
                    "size": 1000 + i,
                    "type": "JPG/JPEG",
                    "download_url": f"https://file.zoom.test/{n}/{i}?jwt=x",
                }
                for i in range(attachments)
            ],
            **extra,
        }
        self.messages[session_id].append(message)
        return message

    def add_engagement(self, engagement_id: str, start: str, *, completed: bool = True) -> None:
        self.engagements.append(
            {
                "engagement_id": engagement_id,
                "start_time": start,
                "end_time": start,
                "direction": "inbound",
                "consumer_number": "+15553334444",
                "queues": [{"cc_queue_id": "q1", "queue_name": "Support"}],
                "agents": [{"user_id": "u1", "display_name": "Agent"}],
                "sms_types": ["sms"],
                "total_sent_messages": 2,
                "total_received_messages": 3,
                "total_sent_files": 0,
                "total_received_files": 1,
                "contact_center_number": "+15550009999",
                "consumer_display_name": "Customer",
                "country_name": "United States",
                "completed": completed,
            }
        )

    def last_access_time(self, session_id: str) -> str:
        return max(m["date_time"] for m in self.messages[session_id])

    def fail_next(
        self,
        pattern: str,
        status: int,
        body: dict[str, t.Any] | str | Exception,
        when: t.Callable[[t.Any], bool] = lambda request: True,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next matching request with ``status``, ``body`` and ``headers``.

        A str body is sent as is (truncated JSON, HTML); an exception is raised, as a
        timeout or a dropped connection would be.
        """
        self.faults.append(Fault(pattern, status, body, when, headers or {}))

    # --- counting ------------------------------------------------------
    def count(self, pattern: str) -> int:
        return sum(1 for path, _ in self.requests if re.fullmatch(pattern, path))

    # --- wiring --------------------------------------------------------
    def install(self, mocker: t.Any) -> FakeZoom:
        mocker.post(OAUTH, json=self._token)
        mocker.get(re.compile(re.escape(API) + r"/phone/sms/sessions/[^/?]+(\?.*)?$"), text=_text(self._details))
        mocker.get(re.compile(re.escape(API) + r"/phone/sms/sessions(\?.*)?$"), text=_text(self._sessions))
        mocker.get(re.compile(re.escape(API) + r"/contact_center/sms(\?.*)?$"), text=_text(self._contact_center))
        return self

    def _token(self, request: t.Any, context: t.Any) -> dict[str, t.Any]:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = dict(p.split("=", 1) for p in (request.text or "").split("&") if "=" in p)
        if request.headers.get("Authorization") != f"Basic {expected}":
            context.status_code = 400
            return {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
        if form.get("grant_type") != "account_credentials" or form.get("account_id") != ACCOUNT_ID:
            context.status_code = 400
            return {"reason": "Invalid account id", "error": "invalid_request"}
        self.tokens_issued += 1
        token = f"tok-{self.tokens_issued}"
        self.valid_tokens.add(token)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl, "scope": "x"}

    def _guard(self, request: t.Any, context: t.Any, *, contact_center: bool = False) -> dict | str | None:
        path = request.path
        self.requests.append((path, request.qs))
        if self.fail_from_request is not None and len(self.requests) >= self.fail_from_request:
            context.status_code = 403
            return {"code": 403, "message": "stopped by the test"}
        for i, fault in enumerate(self.faults):
            if re.search(fault.pattern, path) and fault.when(request):
                del self.faults[i]
                if isinstance(fault.body, Exception):
                    raise fault.body
                context.status_code = fault.status
                context.headers.update(fault.headers)
                return fault.body
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid_tokens:
            context.status_code = 401
            if contact_center:
                return {"status": False, "errorCode": 401}
            return {"code": 124, "message": "Invalid access token."}
        return None

    @staticmethod
    def _window(qs: dict[str, list[str]], default: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
        now = dt.datetime.now(UTC)
        if "from" not in qs:
            return now - default, now
        lo = ts(qs["from"][0].upper())
        hi = ts(qs["to"][0].upper())
        cap = pendulum.instance(lo).add(months=1)
        return lo, min(hi, cap)  # a longer range is silently cut to a month

    def _page(self, request: t.Any, context: t.Any, items: list[dict], key: str, default_size: int) -> dict:
        qs = request.qs
        query = {k: v for k, v in sorted(qs.items()) if k != "next_page_token"}
        size = min(int(qs.get("page_size", [default_size])[0]), 100)
        offset = 0
        if "next_page_token" in qs:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(qs["next_page_token"][0]))
            except ValueError:
                decoded = {}
            if decoded.get("q") != query:
                context.status_code = 400
                return {"code": 300, "message": "The next page token is invalid or expired."}
            offset = decoded["o"]
        page = items[offset : offset + size]
        if key in self.mangle:
            page = [self.mangle[key](json.loads(json.dumps(item))) for item in page]
        token = ""
        if offset + size < len(items):
            token = base64.urlsafe_b64encode(json.dumps({"q": query, "o": offset + size}).encode()).decode()
        token_key = "sync_token" if (self.token_under_sync_token and key == "sms_histories") else "next_page_token"
        return {token_key: token, "page_size": size, key: page}

    def _sessions(self, request: t.Any, context: t.Any) -> dict | str:
        if (error := self._guard(request, context)) is not None:
            return error
        lo, hi = self._window(request.qs, dt.timedelta(days=30))
        session_type = request.qs.get("session_type", ["user"])[0]
        filter_type = request.qs.get("filter_type", ["last_message_time"])[0]
        listed = []
        for sid, session in sorted(self.sessions.items()):
            if not self.messages[sid] or session_type not in ("all", session["session_type"]):
                continue
            if filter_type == "last_message_time":
                times = [self.last_access_time(sid)]
            else:  # the sessions that sent (Out) or received (In) a message in the range
                direction = "Out" if filter_type == "sent_message_time" else "In"
                times = [m["date_time"] for m in self.messages[sid] if m["direction"] == direction]
            if any(lo <= ts(when) <= hi for when in times):
                listed.append({**session, "last_access_time": self.last_access_time(sid)})
        return self._page(request, context, listed, "sms_sessions", 30)

    def _details(self, request: t.Any, context: t.Any) -> dict | str:
        if (error := self._guard(request, context)) is not None:
            return error
        sid = request.path.rsplit("/", 1)[1]
        if sid not in self.sessions:
            context.status_code = 404
            return {"code": 7013, "message": "Error retrieving SMS history."}
        lo, hi = self._window(request.qs, dt.timedelta(days=30))
        found = [m for m in self.messages[sid] if lo <= ts(m["date_time"]) <= hi]
        newest_first = request.qs.get("sort") == ["2"] and not self.ignores_sort
        found.sort(key=lambda m: (m["date_time"], m["message_id"]), reverse=newest_first)
        return self._page(request, context, found, "sms_histories", 30)

    def _contact_center(self, request: t.Any, context: t.Any) -> dict | str:
        if (error := self._guard(request, context, contact_center=True)) is not None:
            return error
        lo, hi = self._window(request.qs, dt.timedelta(hours=24))
        found = [
            {k: v for k, v in e.items() if k != "completed"}
            for e in self.engagements
            if e["completed"] and lo <= ts(e["start_time"]) <= hi
        ]
        body = self._page(request, context, found, "sms", 10)
        return {**body, "total_records": len(found)} if context.status_code == 200 else body


def _text(handler: t.Callable[[t.Any, t.Any], dict | str]) -> t.Callable[[t.Any, t.Any], str]:
    """Serve a handler's dict as JSON and its str as the raw body (truncated JSON, HTML)."""

    def serve(request: t.Any, context: t.Any) -> str:
        body = handler(request, context)
        return body if isinstance(body, str) else json.dumps(body)

    return serve
