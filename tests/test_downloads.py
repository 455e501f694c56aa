"""Attachment files: stored with their hash and size, URLs refreshed, failures kept and retried."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import typing as t
from pathlib import Path

import fsspec
import pytest

from tap_zoom_sms.downloads import MAX_FAILED_IN_A_ROW, MAX_NAME_BYTES, Downloader, FileStore, url_expired
from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.data import file_bytes
from tap_zoom_sms.errors import DailyLimitError, StorageError
from tap_zoom_sms.ratelimit import RateLimitedSession, RateLimiter
from tap_zoom_sms.retries import MAX_FAULT_TRIES
from tests.conftest import run_tap
from tests.fakezoom import FakeZoom, base_config


@pytest.fixture
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=5, sessions=25, engagements=0)) as em:
        yield em


def unlimited(em: Emulator, **overrides: t.Any) -> dict[str, t.Any]:
    return em.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **overrides)


def truth_attachments(em: Emulator) -> dict[tuple[str, str], dict[str, t.Any]]:
    return {(r["message_id"], r["id"]): r for stream, r in em.account.truth() if stream == "attachments"}


def jwt(claims: dict[str, t.Any]) -> str:
    def part(data: dict[str, t.Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


@pytest.mark.parametrize("workers", [1, 8])
def test_every_file_is_stored_under_its_ids_with_its_hash_and_size(
    emulator: Emulator, tmp_path: Path, workers: int
) -> None:
    expected = truth_attachments(emulator)
    assert len(expected) > 20

    run = run_tap(unlimited(emulator, attachments_download_path=str(tmp_path), max_concurrent_requests=workers))

    records = {(r["message_id"], r["id"]): r for r in run.records["attachments"]}
    assert set(records) == set(expected)
    for record in records.values():
        content = file_bytes(record["id"], record["size"])
        stored = Path(record["stored_path"])
        assert stored == tmp_path / record["session_id"] / record["message_id"] / f"{record['id']}-{record['name']}"
        assert stored.read_bytes() == content
        assert record["sha256"] == hashlib.sha256(content).hexdigest()
        assert record["downloaded_size"] == record["size"]
        assert record["download_error"] is None
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == len(expected)  # no partial files left behind
    assert "failed_downloads" not in run.last_state["bookmarks"]["attachments"]


def test_without_the_setting_no_file_is_downloaded(emulator: Emulator) -> None:
    run = run_tap(unlimited(emulator))

    assert run.records["attachments"]
    assert all("stored_path" not in r for r in run.records["attachments"])
    assert "file_download" not in emulator.stats.snapshot()["requests"]


def test_expired_download_urls_are_refreshed_through_their_message(emulator: Emulator, tmp_path: Path) -> None:
    emulator.config.list_download_url_ttl = -60  # message lists hand out URLs that have expired
    expected = truth_attachments(emulator)

    run = run_tap(unlimited(emulator, attachments_download_path=str(tmp_path)))

    assert {(r["message_id"], r["id"]) for r in run.records["attachments"] if r["sha256"]} == set(expected)
    requests = emulator.stats.snapshot()["requests"]
    assert requests["file_download"] == len(expected)
    messages_with_files = {key[0] for key in expected}
    assert len(messages_with_files) <= requests["message"] <= len(expected)


def test_a_url_the_file_server_refuses_is_refreshed_once(requests_mock: t.Any, tmp_path: Path) -> None:
    """A JWT the tap cannot read is tried as is; a 401 then asks for the message again."""
    requests_mock.get("https://file.zoom.us/old", status_code=401, json={"code": 124})
    requests_mock.get("https://file.zoom.us/new", content=b"hello")
    refreshed = []

    def refresh() -> dict[str, t.Any]:
        refreshed.append(1)
        return {"attachments": [{"id": "a1", "download_url": "https://file.zoom.us/new"}]}

    result = make_downloader(tmp_path).download(
        "s1", "m1", {"id": "a1", "name": "x.jpg", "download_url": "https://file.zoom.us/old"}, refresh
    )

    assert refreshed == [1]
    assert result.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert (tmp_path / "s1" / "m1" / "a1-x.jpg").read_bytes() == b"hello"


def test_a_url_refused_again_after_refreshing_is_a_failed_file(requests_mock: t.Any, tmp_path: Path) -> None:
    requests_mock.get("https://file.zoom.us/f", status_code=403)
    url = "https://file.zoom.us/f"

    result = make_downloader(tmp_path).download(
        "s1", "m1", {"id": "a1", "download_url": url}, lambda: {"attachments": [{"id": "a1", "download_url": url}]}
    )

    assert result.stored_path is None
    assert result.download_error == "Zoom refused a freshly issued download URL"
    assert requests_mock.call_count == 2


def test_the_access_token_goes_only_to_zoom_hosts(requests_mock: t.Any, tmp_path: Path) -> None:
    requests_mock.get("https://file.zoom.us/f", content=b"a")
    requests_mock.get("https://cdn.example.com/f", content=b"b")
    downloader = make_downloader(tmp_path)

    for url in ("https://file.zoom.us/f", "https://cdn.example.com/f"):
        downloader.download("s", "m", {"id": url[8:12], "download_url": url}, dict)

    sent = {r.hostname: r.headers.get("Authorization") for r in requests_mock.request_history}
    assert sent == {"file.zoom.us": "Bearer tok", "cdn.example.com": None}


def test_failed_files_are_reported_kept_in_state_and_stored_by_the_next_run(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = unlimited(emulator, attachments_download_path=str(tmp_path / "files"))
    expected = truth_attachments(emulator)
    emulator.config.file_fault_rate = 1.0  # every download answers 500

    with caplog.at_level(logging.INFO):
        first = run_tap(config)

    assert {(r["message_id"], r["id"]) for r in first.records["attachments"]} == set(expected)
    assert all(r["stored_path"] is None and r["download_error"] for r in first.records["attachments"])
    assert any("HTTP 500" in r["download_error"] for r in first.records["attachments"])
    pending = first.last_state["bookmarks"]["attachments"]["failed_downloads"]
    assert {(p["message_id"], p["attachment_id"]) for p in pending} == set(expected)
    assert "could not download" in caplog.text.lower()
    assert f"Attachment files: 0 stored (0.0 MB) in {tmp_path / 'files'}, {len(expected)} failed" in caplog.text
    assert "jwt=" not in caplog.text  # download URLs carry a credential: never logged

    emulator.config.file_fault_rate = 0.0
    emulator.stats.reset()
    second = run_tap(config, state=first.last_state)

    stored = {(r["message_id"], r["id"]) for r in second.records["attachments"] if r["stored_path"]}
    assert stored >= set(expected)
    assert emulator.stats.snapshot()["requests"]["message"] >= len({k[0] for k in expected})
    assert "failed_downloads" not in second.last_state["bookmarks"]["attachments"]
    assert len([p for p in (tmp_path / "files").rglob("*") if p.is_file()]) == len(expected)


def test_after_a_run_of_failed_files_the_others_are_left_to_the_next_run(tmp_path: Path) -> None:
    """A file server that is down costs a bounded number of requests, not six tries per file."""
    with Emulator(DatasetSpec(seed=5, sessions=80, engagements=0)) as em:
        expected = truth_attachments(em)
        assert len(expected) > 3 * MAX_FAILED_IN_A_ROW
        em.config.file_fault_rate = 1.0

        run = run_tap(unlimited(em, attachments_download_path=str(tmp_path), max_concurrent_requests=4))

        tried = em.stats.snapshot()["faults"]["file_500"]
    assert tried <= (MAX_FAILED_IN_A_ROW + 4) * MAX_FAULT_TRIES  # the four in flight when it tripped
    errors = [r["download_error"] for r in run.records["attachments"]]
    assert sum(e.startswith("not tried") for e in errors) >= len(expected) - MAX_FAILED_IN_A_ROW - 4
    pending = run.last_state["bookmarks"]["attachments"]["failed_downloads"]
    assert {(p["message_id"], p["attachment_id"]) for p in pending} == set(expected)


def test_a_failed_file_whose_message_is_gone_is_dropped_from_the_state(emulator: Emulator, tmp_path: Path) -> None:
    session_id = next(r["session_id"] for s, r in emulator.account.truth() if s == "sms_sessions")
    gone = {"session_id": session_id, "message_id": "no-such-message", "attachment_id": "a1"}
    state = {"bookmarks": {"attachments": {"failed_downloads": [gone]}}}

    run = run_tap(unlimited(emulator, attachments_download_path=str(tmp_path)), state=state)

    assert "failed_downloads" not in run.last_state["bookmarks"]["attachments"]
    assert not any(r["message_id"] == "no-such-message" for r in run.records["attachments"])


def test_any_fsspec_url_is_a_destination(emulator: Emulator) -> None:
    run = run_tap(unlimited(emulator, attachments_download_path="memory://zoom-files/sms"))

    memory = fsspec.filesystem("memory")
    for record in run.records["attachments"]:
        assert record["stored_path"].startswith("memory:///zoom-files/sms/")  # fsspec roots memory at /
        with fsspec.open(record["stored_path"], "rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == record["sha256"]
    assert len(memory.find("/zoom-files/sms")) == len(run.records["attachments"])
    memory.rm("/zoom-files", recursive=True)


def test_an_unwritable_path_fails_before_any_data_is_read(emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    run = run_tap(unlimited(emulator, attachments_download_path=str(blocker / "files")), expect_error=True)

    assert isinstance(run.error, StorageError)
    assert "attachments_download_path" in str(run.error)
    assert not run.records
    assert emulator.stats.snapshot()["total_requests"] == 0


def test_path_parts_from_zoom_cannot_leave_the_folder(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))

    path = store.path_for("../s", "m/../../x", {"id": "..", "name": "../../etc/passwd"})

    assert path == f"{tmp_path}/.._s/m_.._.._x/_-.._.._etc_passwd"
    assert Path(path).resolve().is_relative_to(tmp_path)


#: Names a file system refuses or cannot encode as they are (at most 255 bytes a name, no lone surrogate).
LONG_AND_ODD_NAMES = {
    "300 characters": "x" * 296 + ".jpg",
    "85 CJK characters": "写真" * 42 + "写.png",  # 3 bytes each: 255 bytes before the extension
    "a lone surrogate": "photo\ud83d.jpg",  # half an emoji, as Zoom's JSON can escape it
    "a NUL and separators": "a\x00b/c\\d:e.pdf",
}


@pytest.mark.parametrize("name", LONG_AND_ODD_NAMES.values(), ids=LONG_AND_ODD_NAMES.keys())
def test_long_and_odd_names_are_stored_under_a_short_name_that_keeps_id_and_extension(
    requests_mock: t.Any, tmp_path: Path, name: str
) -> None:
    requests_mock.get("https://file.zoom.us/f", content=b"hello")
    attachment = {"id": "a1", "name": name, "download_url": "https://file.zoom.us/f"}

    result = make_downloader(tmp_path).download("s1", "m1", attachment, dict)

    assert result.download_error is None
    assert result.stored_path is not None
    stored = Path(result.stored_path)
    assert stored.read_bytes() == b"hello"
    assert stored.parent == tmp_path / "s1" / "m1"
    assert stored.name.startswith("a1-")
    assert stored.suffix == Path(name).suffix
    assert len(stored.name.encode()) <= MAX_NAME_BYTES
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [stored]  # no partial file left behind


def test_shortened_names_are_the_same_every_run_and_keep_long_names_apart(tmp_path: Path) -> None:
    store = FileStore(str(tmp_path))
    first = {"id": "a1", "name": "x" * 300 + "-1.jpg"}
    second = {"id": "a1", "name": "x" * 300 + "-2.jpg"}

    path = store.path_for("s1", "m1", first)

    assert path == FileStore(str(tmp_path)).path_for("s1", "m1", dict(first))
    assert path != store.path_for("s1", "m1", second)
    long_ids = store.path_for("s" * 300, "m" * 300, {"id": "a" * 300, "name": "b.jpg"})
    parts = long_ids.removeprefix(f"{tmp_path}/").split("/")
    assert len(parts) == 3
    assert all(len(part.encode()) <= MAX_NAME_BYTES for part in parts)
    assert parts[2].endswith(".jpg")


def test_a_run_stores_a_file_whose_name_the_file_system_refuses_and_says_where(
    zoom: FakeZoom, requests_mock: t.Any, tmp_path: Path
) -> None:
    """Such a name ended every run with "cannot write attachment file" (exit 1, nothing extracted).

    The second name reaches the tap as a lone surrogate (the fake's JSON escapes it, as Zoom's can):
    the record checks may have made it U+FFFD already, else the file's name makes it ``_``.
    """
    zoom.add_session("s1")
    message = zoom.add_message("s1", "2024-02-03T04:05:06Z", attachments=2)
    long_name = "写真" * 60 + ".jpg"
    message["attachments"][0]["name"] = long_name
    message["attachments"][1]["name"] = "photo\ud83d.jpg"
    for attachment in message["attachments"]:
        requests_mock.get(attachment["download_url"], content=attachment["id"].encode())

    run = run_tap(base_config(attachments_download_path=str(tmp_path)))

    assert len(run.records["sms_sessions"]) == 1
    records = {r["id"]: r for r in run.records["attachments"]}
    assert records[message["attachments"][0]["id"]]["name"] == long_name  # the record keeps Zoom's name
    for attachment_id, record in records.items():
        assert record["download_error"] is None
        assert Path(record["stored_path"]).read_bytes() == attachment_id.encode()
    odd = message["attachments"][1]["id"]
    assert Path(records[odd]["stored_path"]).name in (f"{odd}-photo_.jpg", f"{odd}-photo\ufffd.jpg")
    assert "failed_downloads" not in run.last_state["bookmarks"]["attachments"]


@pytest.mark.parametrize(
    ("url", "expired"),
    [
        (f"https://f/x?jwt={jwt({'exp': time.time() - 1})}", True),
        (f"https://f/x?jwt={jwt({'exp': time.time() + 30})}", True),  # within the margin
        (f"https://f/x?jwt={jwt({'exp': time.time() + 3600})}", False),
        ("https://f/x?jwt=not-a-jwt", False),
        ("https://f/x", False),
        (f"https://f/x?jwt={jwt({'no_exp': 1})}", False),
    ],
    # ids without the time in them: pytest-xdist's workers must collect the same names
    ids=["expired", "within-margin", "in-an-hour", "not-a-jwt", "no-jwt", "no-exp"],
)
def test_url_expiry_is_read_from_the_jwt(url: str, expired: bool) -> None:
    assert url_expired(url) is expired


FILE = "https://file.zoom.us/f"


def download_one(root: Path) -> t.Any:
    return make_downloader(root).download("s1", "m1", {"id": "a1", "name": "x.jpg", "download_url": FILE}, dict)


def test_a_file_server_fault_gets_the_attempts_of_an_api_request_then_fails_the_file(
    requests_mock: t.Any, tmp_path: Path, no_retry_waits: list[float]
) -> None:
    requests_mock.get(FILE, status_code=503, text="busy")

    result = download_one(tmp_path)

    assert result.stored_path is None
    assert result.download_error is not None
    assert "HTTP 503" in result.download_error
    assert requests_mock.call_count == MAX_FAULT_TRIES
    assert len(no_retry_waits) == MAX_FAULT_TRIES - 1
    assert all(0 <= wait <= 2**n for n, wait in enumerate(no_retry_waits))


def test_a_file_servers_429s_are_waited_out_as_retry_after_says(
    requests_mock: t.Any, tmp_path: Path, no_retry_waits: list[float]
) -> None:
    qps = {"status_code": 429, "headers": {"X-RateLimit-Type": "QPS", "Retry-After": "2"}, "json": {"code": 429}}
    requests_mock.get(FILE, [qps] * (2 * MAX_FAULT_TRIES) + [{"content": b"hello"}])

    result = download_one(tmp_path)

    assert result.sha256 == hashlib.sha256(b"hello").hexdigest()  # more 429s than a fault's attempts: not a fault
    assert len(no_retry_waits) == 2 * MAX_FAULT_TRIES
    assert all(2 <= wait <= 2.25 for wait in no_retry_waits)


def test_the_daily_cap_met_by_a_download_is_raised_at_once(
    requests_mock: t.Any, tmp_path: Path, no_retry_waits: list[float]
) -> None:
    """The cap would fail every file after this one too: it ends the run's Medium requests, not just this file."""
    daily = {"code": 429, "message": "You have reached the maximum daily rate limit for this API."}
    requests_mock.get(FILE, status_code=429, json=daily)

    with pytest.raises(DailyLimitError) as raised:
        download_one(tmp_path)

    assert raised.value.label == "Medium"
    assert requests_mock.call_count == 1
    assert no_retry_waits == []


def make_downloader(root: Path) -> Downloader:
    def authenticate(request: t.Any) -> t.Any:
        request.headers["Authorization"] = "Bearer tok"
        return request

    return Downloader(
        FileStore(str(root)),
        lambda: RateLimitedSession(RateLimiter(0)),
        authenticate=authenticate,
        timeout=5,
        logger=logging.getLogger("test"),
        api_host="api.zoom.us",
    )
