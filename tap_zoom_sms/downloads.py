"""Attachment files: downloaded during the sync into a local folder or any fsspec URL.

Each file goes to ``{session_id}/{message_id}/{attachment_id}-{name}`` under
``attachments_download_path``, and its attachment record says where it went, its
SHA-256 and its size. Each part of that path is made safe (no separators, no ``..``,
no control characters, nothing a file system cannot encode) and shortened, the same
way every run, when it is longer than :data:`MAX_NAME_BYTES`.

Zoom's ``download_url`` embeds a JWT that lives a short while: an expired one (by
its ``exp`` claim, or by a 401/403 answer) is replaced by asking Zoom for the
message again. Downloads use the Medium limiter and the same retry rules as every
API request. A file that still fails is reported in its record (``download_error``)
and kept in the STATE, so the next run tries it again. A server certificate that
fails verification fails its file the same way (see :mod:`tap_zoom_sms.network`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
import typing as t
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import fsspec
import requests
from fsspec.implementations.local import LocalFileSystem
from singer_sdk.exceptions import RetriableAPIError

from tap_zoom_sms import interrupts, retries
from tap_zoom_sms.errors import StorageError, ZoomAPIError
from tap_zoom_sms.network import TLSError
from tap_zoom_sms.responses import describe_error
from tap_zoom_sms.retries import TRANSIENT

if t.TYPE_CHECKING:
    import logging

    from tap_zoom_sms.ratelimit import RateLimitedSession

#: Treat a download URL as expired this many seconds before its JWT says.
EXPIRY_MARGIN = 60
#: Bytes read from the network and written to storage at a time.
CHUNK = 1 << 16
#: After this many files in a row fail, the run's other files are left to the next run
#: (a file server that is down would otherwise cost every file six tries and their waits).
MAX_FAILED_IN_A_ROW = 20
#: Longest name, in UTF-8 bytes, given to one part of a file's path. File systems refuse names
#: over 255 bytes, and a local file is first written as ``{name}.{32 hex digits}.part`` (38 more).
MAX_NAME_BYTES = 200
#: Longest extension (dot included, in bytes) a shortened name keeps; a longer one is part of the name.
MAX_EXTENSION_BYTES = 16
#: Hex digits of the SHA-256 of a long name that its shortened form ends with (before the extension).
NAME_HASH_DIGITS = 12
#: Hosts that may see the access token along with a download (Zoom's own).
ZOOM_DOMAINS = ("zoom.us", "zoomgov.com")

#: Refetches one message from Zoom (with fresh download URLs), or None if it is gone.
Refresh = t.Callable[[], "dict[str, t.Any] | None"]


@dataclass(frozen=True)
class Download:
    """What became of one attachment's file: where it is stored, or why it is not."""

    stored_path: str | None = None
    sha256: str | None = None
    downloaded_size: int | None = None
    download_error: str | None = None

    def fields(self) -> dict[str, t.Any]:
        """Return the fields added to the attachment record."""
        return asdict(self)


class _FileFailedError(Exception):
    """This one file could not be fetched (the run goes on; the file is retried next run)."""


class FileStore:
    """A folder, local or remote (any fsspec URL), that attachment files are written into."""

    def __init__(self, url: str) -> None:
        """Open ``url`` (``/data/zoom``, ``file:///...``, ``s3://bucket/prefix``, ...)."""
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            msg = f"attachments_download_path {url!r} cannot be opened: {exc}"
            raise StorageError(msg) from None
        self.root = self.root.rstrip("/")
        self._local = isinstance(self.fs, LocalFileSystem)

    def check(self) -> None:
        """Create the folder (if the filesystem has folders), so a bad path fails before any data is read."""
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create attachments_download_path {self.root!r}: {exc}"
            raise StorageError(msg) from None

    def path_for(self, session_id: str, message_id: str, attachment: dict[str, t.Any]) -> str:
        """Return ``{root}/{session_id}/{message_id}/{attachment_id}-{name}``, each part made safe and short.

        The same attachment always gets the same path, so a file owed by an earlier run
        is stored where its record will say, and the id at the front keeps names apart.
        """
        name = _fit(f"{_safe(attachment['id'])}-{_safe(attachment.get('name') or 'file')}")
        return f"{self.root}/{_fit(_safe(session_id))}/{_fit(_safe(message_id))}/{name}"

    def location(self, path: str) -> str:
        """Return how records name a stored file: a local path, or a URL with its protocol."""
        return path if self._local else self.fs.unstrip_protocol(path)

    def write(self, path: str, chunks: t.Iterable[bytes]) -> tuple[str, int]:
        """Write ``chunks`` to ``path``; return their SHA-256 and size.

        Local files are written beside their final name and renamed into place, so a
        file that is there is complete; object stores publish an object only once
        its upload is complete anyway.
        """
        digest, size = hashlib.sha256(), 0
        target = f"{path}.{uuid.uuid4().hex}.part" if self._local else path
        try:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(target, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if self._local:
                self.fs.mv(target, path)
        except OSError as exc:
            msg = f"cannot write attachment file {self.location(path)}: {exc}"
            raise StorageError(msg) from None
        finally:
            if self._local and self.fs.exists(target):
                self.fs.rm(target)
        return digest.hexdigest(), size


class Downloader:
    """Downloads attachment files into a :class:`FileStore`, several at once (thread-safe).

    Files are downloaded in a pool of their own, so the files of one message, and of
    the messages after it, download together while the messages are still being read;
    the records wait for their files only when they are written.
    """

    def __init__(
        self,
        store: FileStore,
        make_session: t.Callable[[], RateLimitedSession],
        *,
        authenticate: t.Callable[[requests.PreparedRequest], requests.PreparedRequest],
        timeout: float,
        logger: logging.Logger,
        api_host: str,
        workers: int = 1,
    ) -> None:
        """Send through sessions ``make_session`` returns, one per thread (their limiter paces downloads).

        ``authenticate`` adds the bearer token, sent only to Zoom's hosts and to
        ``api_host`` (the configured API's host). ``workers`` files download at once.
        """
        self.store = store
        self._make_session = make_session
        self._local = threading.local()
        self._authenticate = authenticate
        self._timeout = timeout
        self._logger = logger
        self._trusted = (api_host, *ZOOM_DOMAINS)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="zoom-download")
        self._lock = threading.Lock()
        self._failed_in_a_row = 0
        self.totals = {"stored": 0, "bytes": 0, "failed": 0}

    def submit(
        self, session_id: str, message_id: str, attachment: dict[str, t.Any], refresh: Refresh
    ) -> Future[Download]:
        """Start downloading one file (see :meth:`download`); its outcome comes with the future."""
        return self._pool.submit(self.download, session_id, message_id, attachment, refresh)

    def close(self) -> None:
        """Wait for the downloads under way (not after a stop signal), stop the pool, log what was stored."""
        self._pool.shutdown(wait=not interrupts.STOP.is_set(), cancel_futures=True)
        totals = self.totals
        self._logger.info(
            "Attachment files: %d stored (%.1f MB) in %s, %d failed (left to the next run)",
            totals["stored"],
            totals["bytes"] / 1e6,
            self.store.location(self.store.root),
            totals["failed"],
        )

    def download(self, session_id: str, message_id: str, attachment: dict[str, t.Any], refresh: Refresh) -> Download:
        """Store one attachment's file, refreshing its URL once if it has expired.

        Failures of this file (Zoom refuses it, it is gone, faults outlast the
        retries) are returned, not raised: the run goes on. Storage failures and
        the daily cap are raised: they would fail every file after this one too.
        Once MAX_FAILED_IN_A_ROW files have failed in a row, the others are not tried.
        """
        if self._failed_in_a_row >= MAX_FAILED_IN_A_ROW:
            self._count(failed=True)
            return Download(download_error=f"not tried: the {MAX_FAILED_IN_A_ROW} files before it failed")
        path = self.store.path_for(session_id, message_id, attachment)
        url = attachment.get("download_url")
        refreshed = False
        try:
            if not url or url_expired(url):
                url, refreshed = self._fresh_url(attachment["id"], refresh), True
            while True:
                try:
                    sha256, size = self._fetch(url, path)
                except _ExpiredURLError:
                    if refreshed:
                        raise _FileFailedError("Zoom refused a freshly issued download URL") from None
                    url, refreshed = self._fresh_url(attachment["id"], refresh), True
                    continue
                self._count(failed=False, size=size)
                return Download(stored_path=self.store.location(path), sha256=sha256, downloaded_size=size)
        except _FileFailedError as exc:
            error = f"attachment {attachment['id']} of message {message_id}: {exc}"
            self._logger.warning("Could not download %s; it will be retried on the next run", error)
            self._count(failed=True)
            return Download(download_error=str(exc))

    def _count(self, *, failed: bool, size: int = 0) -> None:
        """Count files stored and failed (in a row too); say so once when the others stop being tried."""
        with self._lock:
            self._failed_in_a_row = self._failed_in_a_row + 1 if failed else 0
            tripped = self._failed_in_a_row == MAX_FAILED_IN_A_ROW
            self.totals["failed" if failed else "stored"] += 1
            self.totals["bytes"] += size
        if tripped:
            self._logger.warning(
                "%d attachment files failed in a row: this run's other files are left to the next run",
                MAX_FAILED_IN_A_ROW,
            )

    def _fresh_url(self, attachment_id: str, refresh: Refresh) -> str:
        """Ask Zoom for the message again, for a download URL with a new JWT."""
        try:
            message = refresh()
        except ZoomAPIError as exc:
            raise _FileFailedError(f"could not refresh its download URL: {exc}") from None
        if message is None:
            raise _FileFailedError("its message no longer exists")
        for attachment in message.get("attachments") or ():
            if attachment.get("id") == attachment_id and attachment.get("download_url"):
                return str(attachment["download_url"])
        raise _FileFailedError("its message no longer lists it")

    def _fetch(self, url: str, path: str) -> tuple[str, int]:
        """GET ``url`` into ``path``, retrying as API requests are; raise _ExpiredURLError on 401/403.

        A file server whose certificate fails verification fails this file (not the run):
        the records go on, and the file is owed to the next run like any other.
        """
        fetch = functools.partial(self._fetch_once, url, path)
        try:
            return retries.call(fetch, retries.API, "GET attachment file", self._logger, "Medium")
        except TLSError as exc:
            raise _FileFailedError(str(exc)) from None
        except TRANSIENT as final:
            raise _FileFailedError(retries.describe(final)) from None

    def _fetch_once(self, url: str, path: str) -> tuple[str, int]:
        """One attempt: GET ``url`` and write what it answers into ``path``."""
        with self._get(url) as response:
            return self.store.write(path, response.iter_content(CHUNK))

    def _get(self, url: str) -> requests.Response:
        request = requests.Request("GET", url).prepare()
        host = urlsplit(url).hostname or ""
        if any(host == trusted or host.endswith(f".{trusted}") for trusted in self._trusted):
            request = self._authenticate(request)
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._make_session()
        response = session.send(request, stream=True, timeout=self._timeout)
        status = response.status_code
        if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            response.close()
            raise _ExpiredURLError
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            response.content  # noqa: B018 (read the body: it says which limit was hit)
            raise RetriableAPIError(describe_error(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            response.close()
            raise _FileFailedError(f"HTTP {status} from the file server")
        return response


class _ExpiredURLError(Exception):
    """The file server refused the URL's JWT (401/403)."""


def url_expired(url: str, now: float | None = None) -> bool:
    """Say whether the JWT in a download URL has expired (or is about to); False if it cannot tell.

    The claims are read without checking the signature: the key is Zoom's, and all the
    tap needs is the time to ask for a fresh URL (the file server judges the token).
    """
    import jwt  # noqa: PLC0415 (only runs that download files need it, and it imports cryptography: ~30 ms at start)

    token = (parse_qs(urlsplit(url).query).get("jwt") or [""])[0]
    try:
        expiry = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        return False
    return expiry < (time.time() if now is None else now) + EXPIRY_MARGIN


def _safe(part: str) -> str:
    """Make one path component safe: no separators, no ``..``, no control characters.

    Lone UTF-16 surrogates (Zoom's JSON can carry one as an escape, say half an emoji)
    become ``_`` too: no file system encoding can write them.
    """
    cleaned = re.sub(r"[\x00-\x1f\x7f/\\:\ud800-\udfff]", "_", str(part)).strip()
    return "_" if cleaned in ("", ".", "..") else cleaned


def _fit(name: str) -> str:
    """Shorten a safe name to at most MAX_NAME_BYTES of UTF-8, keeping its start and its extension.

    A name that fits is kept as it is. A longer one keeps as much of its start as fits
    (never half a character), then ``~`` and the start of the SHA-256 of the whole
    name, then its extension: the same name always gives the same result, and two
    long names that start alike still differ.
    """
    encoded = name.encode()
    if len(encoded) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = f"{dot}{extension}"
    if not stem or len(suffix.encode()) > MAX_EXTENSION_BYTES:
        stem, suffix = name, ""
    tag = "~" + hashlib.sha256(encoded).hexdigest()[:NAME_HASH_DIGITS]
    room = MAX_NAME_BYTES - len(tag) - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore") + tag + suffix
