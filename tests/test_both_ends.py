"""A session's window read from both ends when the limit has room: every message once, oldest first.

The unit tests hold the two ends' logic (:class:`BothEnds`) against pages built by hand,
the harsh cases included: Zoom ignoring ``sort``, messages of one second split across
pages, a newest page that fails or lacks a field. The tap's tests run it against the
fake Zoom with the limiter's "room" held open, so that which page is read from which end
does not depend on timing.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t

import pytest
import requests

from tap_zoom_sms.ratelimit import RateLimiter
from tap_zoom_sms.readahead.bothends import BothEnds, NewestPage, newest_first
from tests.conftest import run_tap
from tests.fakezoom import FakeZoom, base_config

if t.TYPE_CHECKING:
    from collections.abc import Sequence

PAGE = 100
START = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
LOGGER = logging.getLogger("test_both_ends")
#: A failure guard only: the newest page is answered at once by the fake Zoom.
PATIENCE = 60.0
NO_ID_OR_TIME = "a message in it has no id, or no time in Zoom's own form"


def messages(count: int, *, same_second_from: int | None = None) -> list[dict[str, t.Any]]:
    """``count`` messages a minute apart, oldest first; from ``same_second_from`` on, all in one second."""
    out = []
    for i in range(count):
        minute = i if same_second_from is None or i < same_second_from else same_second_from
        when = (START + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append({"message_id": f"m{i:04d}", "date_time": when})
    return out


class Newest(NewestPage):
    """A newest page already read: ``records`` as Zoom sent them, or ``error`` raised."""

    def __init__(self, records: Sequence[t.Any] = (), error: Exception | None = None, after: int = 0) -> None:
        """``after``: Zoom's answer comes only after that many more looks (the pages oldest first go on)."""
        self._records, self._error, self._after = list(records), error, after

    def done(self) -> bool:
        self._after -= 1
        return self._after < 0

    def records(self) -> list[t.Any]:
        if self._error is not None:
            raise self._error
        return self._records


def read_from_both_ends(window: list[dict[str, t.Any]], newest: Newest) -> tuple[list[dict[str, t.Any]], int]:
    """Read ``window`` page by page oldest first, as the stream does, ending where BothEnds says.

    Return what was written and the pages read oldest first.
    """
    both, out = BothEnds(newest, LOGGER), []
    for start in range(0, len(window), PAGE):
        page = window[start : start + PAGE]
        out += page
        both.read(page)
        pages = start // PAGE + 1
        if start + PAGE >= len(window):
            return out, pages  # the last page: the window ends anyway
        if start and (rest := both.rest()) is not None:
            return out + rest, pages
    return out, -(-len(window) // PAGE)


@pytest.mark.parametrize(
    ("count", "pages"),
    # 299 and 300: the newest page's oldest is no older than the second page's newest, and nothing
    # says no message lies between them; 1000: the last page is whole, the newest page saves nothing
    [(201, 2), (250, 2), (299, 3), (300, 3), (450, 4), (1000, 10), (1050, 10)],
)
def test_the_newest_page_completes_the_window_once_the_pages_oldest_first_passed_its_oldest(
    count: int, pages: int
) -> None:
    window = messages(count)
    newest = Newest(window[::-1][:PAGE])

    got, read = read_from_both_ends(window, newest)

    assert got == window  # every message once, oldest first
    assert read == pages
    assert read + 1 <= -(-count // PAGE) + 1  # at most one request more than reading on to the end


def test_messages_of_one_second_split_across_pages_are_each_written_once() -> None:
    """The pages oldest first and the newest page each keep the messages of one second in an order of their own."""
    window = messages(250)
    tie = window[190:210]
    for message in tie:
        message["date_time"] = tie[0]["date_time"]
    oldest_first = window[:190] + tie[::-1] + window[210:]  # the second page ends in the middle of the tie
    newest = Newest(window[210:][::-1] + tie + window[150:190][::-1])  # its oldest is older than the tie

    got, read = read_from_both_ends(oldest_first, newest)

    assert read == 2
    assert sorted(m["message_id"] for m in got) == [m["message_id"] for m in window]  # each once
    assert [m["date_time"] for m in got] == sorted(m["date_time"] for m in window)  # oldest first


def test_a_newest_page_that_is_the_oldest_page_again_is_set_aside(caplog: pytest.LogCaptureFixture) -> None:
    """Zoom ignoring ``sort`` sends the first page again, oldest first: nothing may end the window early."""
    window = messages(450)
    caplog.set_level(logging.DEBUG, LOGGER.name)

    got, read = read_from_both_ends(window, Newest(window[:PAGE]))

    assert (got, read) == (window, 5)
    assert "set aside (it is not newest first)" in caplog.text


def test_a_newest_page_of_one_second_older_than_what_was_read_is_set_aside() -> None:
    # Zoom ignoring sort, and the window's oldest hundred all in one second: in order either way
    window = [{**m, "date_time": messages(1)[0]["date_time"]} if i < PAGE else m for i, m in enumerate(messages(450))]
    assert read_from_both_ends(window, Newest(window[:PAGE])) == (window, 5)


@pytest.mark.parametrize(
    ("newest", "why"),
    [
        (Newest(error=requests.ConnectionError("refused")), "reading it failed: refused"),
        (Newest([{"message_id": "x"}]), "a message in it has no id, or no time in Zoom's own form"),
        (Newest([{"date_time": "2024-05-01T00:00:00Z"}]), "a message in it has no id, or no time in Zoom's own form"),
        (
            Newest([{"message_id": "x", "date_time": "yesterday"}]),
            "a message in it has no id, or no time in Zoom's own form",
        ),
        (Newest([]), "it is empty, or older than a message read oldest first"),
    ],
)
def test_a_newest_page_that_fails_or_lacks_a_field_is_set_aside_and_the_window_read_to_its_end(
    newest: Newest, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    window = messages(450)
    caplog.set_level(logging.DEBUG, LOGGER.name)
    assert read_from_both_ends(window, newest) == (window, 5)
    assert why in caplog.text


def test_a_newest_page_with_epoch_milliseconds_for_times_is_set_aside(caplog: pytest.LogCaptureFixture) -> None:
    window = messages(450)
    caplog.set_level(logging.DEBUG, LOGGER.name)
    newest = Newest([{**m, "date_time": "1714521600000"} for m in window[::-1][:PAGE]])
    assert read_from_both_ends(window, newest) == (window, 5)
    assert "no time in Zoom's own form" in caplog.text


def test_a_newest_page_answered_late_is_used_by_the_first_page_after_it_came() -> None:
    window = messages(650)  # its newest page holds messages 550 to 649
    assert read_from_both_ends(window, Newest(window[::-1][:PAGE], after=2)) == (window, 6)  # not 7
    assert read_from_both_ends(window, Newest(window[::-1][:PAGE], after=9)) == (window, 7)  # too late: no gain


def test_a_message_only_the_newest_page_holds_is_written_whatever_its_time() -> None:
    """Harsh: the pages oldest first never show it (a message Zoom files elsewhere); the newest page does."""
    window = messages(250)
    stray = {"message_id": "stray", "date_time": window[180]["date_time"]}
    newest = Newest([*window[::-1][:70], stray, *window[::-1][70:99]])  # newest first, the stray among them

    got, read = read_from_both_ends(window, newest)

    assert read == 2
    assert sorted(m["message_id"] for m in got) == sorted([m["message_id"] for m in window] + ["stray"])


def test_a_newest_page_that_lacks_a_message_it_should_hold_is_set_aside(caplog: pytest.LogCaptureFixture) -> None:
    """Every message read oldest first and newer than the newest page's oldest must be on it."""
    window = messages(450)
    caplog.set_level(logging.DEBUG, LOGGER.name)
    newest = [m for m in window[::-1][:101] if m["message_id"] != "m0399"]  # m0399 is newer than its oldest

    assert read_from_both_ends(window, Newest(newest)) == (window, 5)
    assert "set aside (it lacks a message read oldest first)" in caplog.text


def test_pages_read_oldest_first_out_of_order_never_end_the_window_early() -> None:
    window = messages(450)
    shuffled = window[:PAGE] + window[PAGE : 2 * PAGE][::-1] + window[2 * PAGE :]
    assert read_from_both_ends(shuffled, Newest(window[::-1][:PAGE])) == (shuffled, 5)


def test_the_newest_pages_url_is_the_first_pages_sorted_the_other_way() -> None:
    first = "https://api.zoom.test/v2/phone/sms/sessions/s1?page_size=100&from=a&to=b&sort=1"
    assert newest_first(first) == "https://api.zoom.test/v2/phone/sms/sessions/s1?page_size=100&from=a&to=b&sort=2"
    later = "https://api.zoom.test/v2/phone/sms/sessions/s1?page_size=100&next_page_token=t&sort=1"
    assert newest_first(later) == "https://api.zoom.test/v2/phone/sms/sessions/s1?page_size=100&sort=2"


# --- the tap, against the fake Zoom ---------------------------------------------------------


@pytest.fixture
def room(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limiter always has a turn nobody waits for (as at the end of a run, with a limit set).

    And the newest page comes before the page after it: its answer is awaited (the tap does not
    wait, see readahead.bothends), so which page comes first does not depend on the threads.
    """
    monkeypatch.setattr(RateLimiter, "has_room", lambda _self: True)
    monkeypatch.setattr(NewestPage, "done", lambda self: self._future.exception(timeout=PATIENCE) is None or True)


def one_window_session(zoom: FakeZoom, count: int) -> list[str]:
    zoom.add_session("s")
    return [zoom.add_message("s", f"2024-05-10T{i // 60:02d}:{i % 60:02d}:00Z")["message_id"] for i in range(count)]


def details(zoom: FakeZoom) -> list[dict[str, list[str]]]:
    return [query for path, query in zoom.requests if path.endswith("/phone/sms/sessions/s")]


CONFIG = {"start_date": "2024-05-01T00:00:00Z", "end_date": "2024-05-31T23:59:59Z", "page_size": PAGE}


@pytest.mark.usefixtures("room")
def test_a_window_of_three_pages_is_read_in_two_round_trips_every_message_once_in_order(zoom: FakeZoom) -> None:
    ids = one_window_session(zoom, 250)

    run = run_tap(base_config(**CONFIG))

    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    asked = details(zoom)
    assert sorted(q["sort"][0] for q in asked) == ["1", "1", "2"]  # no third page: the newest page held it


@pytest.mark.usefixtures("room")
def test_a_window_of_two_pages_costs_one_request_more_and_loses_nothing(zoom: FakeZoom) -> None:
    ids = one_window_session(zoom, 150)
    run = run_tap(base_config(**CONFIG))
    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    assert sorted(q["sort"][0] for q in details(zoom)) == ["1", "1", "2"]


@pytest.mark.usefixtures("room")
def test_zoom_ignoring_sort_costs_a_request_and_loses_nothing(zoom: FakeZoom) -> None:
    ids = one_window_session(zoom, 450)
    zoom.ignores_sort = True

    run = run_tap(base_config(**CONFIG))

    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    assert sorted(q["sort"][0] for q in details(zoom)) == ["1"] * 5 + ["2"]  # every page, and one set aside


@pytest.mark.usefixtures("room")
def test_a_newest_page_with_times_in_another_form_is_set_aside(zoom: FakeZoom) -> None:
    """Epoch milliseconds (a drift Zoom has shown) are conformed on the pages written, never compared raw."""
    ids = one_window_session(zoom, 250)
    zoom.mangle["sms_histories"] = lambda message: {**message, "date_time": "1715335200000"}

    run = run_tap(base_config(**CONFIG))

    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    assert sorted(q["sort"][0] for q in details(zoom)) == ["1", "1", "1", "2"]


def test_a_newest_page_that_comes_after_the_next_page_is_not_waited_for(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RateLimiter, "has_room", lambda _self: True)
    monkeypatch.setattr(NewestPage, "done", lambda _self: False)  # never answered in time
    ids = one_window_session(zoom, 250)

    run = run_tap(base_config(**CONFIG))

    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    assert sorted(q["sort"][0] for q in details(zoom)) == ["1", "1", "1", "2"]


@pytest.mark.parametrize("setting", [{"medium_requests_per_second": 0}, {"max_concurrent_requests": 1}])
def test_without_a_free_turn_or_an_idle_worker_a_window_is_read_oldest_first_only(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch, setting: dict[str, int]
) -> None:
    if "max_concurrent_requests" in setting:
        monkeypatch.setattr(RateLimiter, "has_room", lambda _self: True)  # room, but no worker to read it
    ids = one_window_session(zoom, 250)
    run = run_tap(base_config(**CONFIG, **setting))
    assert [r["message_id"] for r in run.records["sms_messages"]] == ids
    assert [q.get("sort") for q in details(zoom)] == [["1"]] * 3


@pytest.mark.usefixtures("room")
def test_a_window_restarted_after_zoom_refused_its_page_token_is_read_from_both_ends_again(zoom: FakeZoom) -> None:
    ids = one_window_session(zoom, 450)
    refused = {"code": 300, "message": "The next page token is invalid or expired."}
    zoom.fail_next(r"/sessions/s$", 400, refused, when=lambda request: "next_page_token" in request.qs)

    run = run_tap(base_config(**CONFIG))

    assert [r["message_id"] for r in run.records["sms_messages"]] == ids  # each once, oldest first
    sorts = [q["sort"][0] for q in details(zoom)]
    assert sorts.count("2") == 2  # once for each reading of the window
    assert sorts.count("1") == 2 + 4  # the first reading's two pages; the second's four: the newest held the fifth
