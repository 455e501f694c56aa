"""The tap's settings as Meltano, ``--about`` and the checks see them: names, types, defaults, descriptions."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_zoom_sms.conform.records import POLICIES as MALFORMED_POLICIES

SESSION_TYPES = ("all", "user", "call_queue", "auto_receptionist")
#: How a backfill finds the months of each session's messages (see :mod:`tap_zoom_sms.discovery`).
DISCOVERY_MODES = ("activity", "exhaustive")
#: The Server-to-Server OAuth settings, all needed unless access_token is set.
CREDENTIALS = ("account_id", "client_id", "client_secret")
#: Zoom's largest page size.
MAX_PAGE_SIZE = 100

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "account_id",
        th.StringType,
        title="Account ID",
        description="Account ID of the Zoom Server-to-Server OAuth app (required unless access_token is set).",
    ),
    th.Property(
        "client_id",
        th.StringType,
        title="Client ID",
        description="Client ID of the Server-to-Server OAuth app (required unless access_token is set).",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        secret=True,
        title="Client Secret",
        description="Client secret of the Server-to-Server OAuth app (required unless access_token is set).",
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        title="Access Token",
        description="An access token obtained elsewhere (e.g. a user-level OAuth app's), used instead of "
        "the Server-to-Server credentials. The tap cannot renew it: a run ends when Zoom refuses it.",
    ),
    th.Property(
        "user_ids",
        th.ArrayType(th.StringType),
        title="User IDs",
        description="Read the SMS sessions of these users (IDs or emails; me: the token's own user) "
        "instead of the account's list, for apps without admin scopes.",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        required=True,
        title="Start Date",
        description="UTC date-time of the earliest data to extract on a first run.",
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        title="End Date",
        description="UTC date-time up to which to extract (default: now), for backfills of a fixed range.",
    ),
    th.Property(
        "api_url",
        th.StringType,
        default="https://api.zoom.us/v2",
        title="API URL",
        description="API base URL (Zoom for Government: https://api.zoomgov.com/v2).",
    ),
    th.Property(
        "oauth_url",
        th.StringType,
        default="https://zoom.us/oauth/token",
        title="OAuth URL",
        description="Token endpoint (Zoom for Government: https://zoomgov.com/oauth/token).",
    ),
    th.Property(
        "medium_requests_per_second",
        th.NumberType,
        default=10,
        title="Medium Requests per Second",
        description="Client-side cap for Medium-label requests: 10 on Pro, 20 on Business and up; 0 turns it off.",
    ),
    th.Property(
        "heavy_requests_per_second",
        th.NumberType,
        default=5,
        title="Heavy Requests per Second",
        description="Client-side cap for Heavy-label requests: 5 on Pro, 10 on Business and up; 0 turns it off.",
    ),
    th.Property(
        "lookback_minutes",
        th.IntegerType,
        default=30,
        title="Lookback Minutes",
        description="How far before its bookmark each run re-reads Phone SMS sessions and messages "
        "(Zoom can show a message minutes after the time it is stamped with).",
    ),
    th.Property(
        "contact_center_lookback_hours",
        th.IntegerType,
        default=72,
        title="Contact Center Lookback Hours",
        description="How far before its bookmark each run re-reads Contact Center engagements "
        "(they are published only once completed).",
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=MAX_PAGE_SIZE,
        title="Page Size",
        description="Records per page asked of Zoom (1 to 100).",
    ),
    th.Property(
        "session_type",
        th.StringType,
        default="all",
        allowed_values=list(SESSION_TYPES),
        title="Session Type",
        description="Which SMS sessions to extract: all, user, call_queue or auto_receptionist.",
    ),
    th.Property(
        "message_discovery",
        th.StringType,
        default="activity",
        allowed_values=list(DISCOVERY_MODES),
        title="Message Discovery",
        description="How a backfill finds the months of each session's messages: activity (Zoom's "
        "sent/received session lists, checked as the run goes; a shortfall falls back to exhaustive) "
        "or exhaustive (every month up to each session's last message).",
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType,
        title="Max Concurrent Requests",
        description="Sessions whose messages are fetched at once, and attachment files downloaded at once "
        "(1: one at a time); unset: enough to hold the Medium limit at up to 1.5 s a request "
        "(15 at 10/s, 30 at 20/s, 8 with no limit). The rate limits above still hold.",
    ),
    th.Property(
        "attachments_download_path",
        th.StringType,
        title="Attachments Download Path",
        description="Where to store attachment files, as a local folder or any fsspec URL such as "
        "s3://bucket/prefix (its filesystem's package installed). Files go to "
        "{session_id}/{message_id}/{attachment_id}-{name}; unset: files are not downloaded.",
    ),
    th.Property(
        "log_sdk_metrics",
        th.BooleanType,
        default=False,
        title="Log SDK Metrics",
        description="Also log the SDK's METRIC lines (one per request, and per session synced); "
        "off, a progress line every 30 seconds sums them up.",
    ),
    th.Property(
        "malformed_records",
        th.StringType,
        default="repair",
        allowed_values=list(MALFORMED_POLICIES),
        title="Malformed Records",
        description="What to do with a record from Zoom that does not match its schema: repair (convert "
        "unambiguous values such as numeric strings, set the rest to null, skip a record without its key; "
        "each reported in a WARNING line and counted at the end of the run) or fail (end the run with one "
        "line, before the bookmark passes the record).",
    ),
    th.Property(
        "repair_text",
        th.BooleanType,
        default=True,
        title="Repair Text",
        description="Replace NUL characters and lone UTF-16 surrogates (half an emoji) in Zoom's text with "
        "U+FFFD, which PostgreSQL and UTF-8 cannot hold; false: keep the text as Zoom sent it (lone surrogates "
        "written as JSON \\u escapes), for targets that take it.",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType,
        default=60,
        title="Request Timeout",
        description="Seconds to wait for a Zoom response before retrying.",
    ),
).to_dict()
