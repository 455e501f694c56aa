"""Window splitting: calendar months, leap years, inclusive shared bounds, end_date."""

from __future__ import annotations

import datetime as dt
import itertools

import pendulum
import pytest

from tap_zoom_sms.windows import Window, WindowDedupe, format_zoom_time, month_windows, parse_time

UTC = dt.timezone.utc
FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=UTC)


def d(text: str) -> dt.datetime:
    return parse_time(text)


def windows(start: str, end: str | None, now: dt.datetime = FAR_FUTURE) -> list[tuple[str, str]]:
    made = month_windows(d(start), d(end) if end else None, now=lambda: now)
    return [(format_zoom_time(w.start), format_zoom_time(w.end)) for w in made]


def test_range_is_cut_on_calendar_months_sharing_boundaries() -> None:
    assert windows("2024-01-15T10:00:00Z", "2024-04-02T08:30:00Z") == [
        ("2024-01-15T10:00:00Z", "2024-02-01T00:00:00Z"),
        ("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),
        ("2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"),
        ("2024-04-01T00:00:00Z", "2024-04-02T08:30:00Z"),
    ]


def test_leap_february_and_year_end() -> None:
    assert windows("2024-02-29T23:59:59Z", "2024-03-01T00:00:01Z") == [
        ("2024-02-29T23:59:59Z", "2024-03-01T00:00:00Z"),
        ("2024-03-01T00:00:00Z", "2024-03-01T00:00:01Z"),
    ]
    assert windows("2023-12-31T12:00:00Z", "2024-01-01T00:00:00Z") == [
        ("2023-12-31T12:00:00Z", "2024-01-01T00:00:00Z"),
    ]


def test_single_instant_and_empty_range() -> None:
    assert windows("2024-05-05T05:05:05Z", "2024-05-05T05:05:05Z") == [("2024-05-05T05:05:05Z", "2024-05-05T05:05:05Z")]
    assert windows("2024-05-06T00:00:00Z", "2024-05-05T00:00:00Z") == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2019-03-31T23:00:00Z", "2021-03-01T00:00:00Z"),
        ("2020-01-31T00:00:00Z", "2020-03-31T00:00:00Z"),
        ("2023-02-28T00:00:00Z", "2024-02-29T12:00:00Z"),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"),
    ],
)
def test_windows_cover_the_range_without_gaps_and_never_exceed_a_month(start: str, end: str) -> None:
    made = list(month_windows(d(start), d(end), now=lambda: FAR_FUTURE))
    assert made[0].start == d(start)
    assert made[-1].end == d(end)
    for before, after in itertools.pairwise(made):
        assert before.end == after.start  # overlap on the boundary, never a gap
    for window in made:
        assert window.start <= window.end
        assert window.end <= pendulum.instance(window.start).add(months=1)
        # within one calendar month, but for the shared boundary instant
        last_inside = window.end - dt.timedelta(seconds=1) if window.end > window.start else window.end
        assert (last_inside.year, last_inside.month) == (window.start.year, window.start.month)


def test_end_date_in_the_future_is_clamped_to_now() -> None:
    now = d("2024-03-10T12:00:00Z")
    assert windows("2024-02-20T00:00:00Z", "2030-01-01T00:00:00Z", now=now)[-1] == (
        "2024-03-01T00:00:00Z",
        "2024-03-10T12:00:00Z",
    )


def test_without_end_the_last_window_reaches_the_moment_it_is_made() -> None:
    clock = iter([d("2024-03-10T12:00:00Z"), d("2024-03-10T12:00:00Z"), d("2024-04-01T00:00:07Z")])
    made = month_windows(d("2024-02-20T00:00:00Z"), None, now=lambda: next(clock))
    first = next(made)
    assert first == Window(d("2024-02-20T00:00:00Z"), d("2024-03-01T00:00:00Z"))
    # the run took long: by the time the next window is made, a new month began
    assert next(made) == Window(d("2024-03-01T00:00:00Z"), d("2024-03-10T12:00:00Z"))
    assert next(made, None) is None
    # the last window ends at the moment it is made, and is the last one
    clock2 = iter([d("2024-03-31T23:00:00Z"), d("2024-04-01T00:00:07Z")])
    made2 = list(month_windows(d("2024-03-30T00:00:00Z"), None, now=lambda: next(clock2)))
    assert made2 == [Window(d("2024-03-30T00:00:00Z"), d("2024-03-31T23:00:00Z"))]


def test_window_params_are_explicit_utc() -> None:
    window = Window(d("2024-01-01T05:00:00+02:00"), d("2024-01-02"))
    assert window.params() == {"from": "2024-01-01T03:00:00Z", "to": "2024-01-02T00:00:00Z"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", "2024-01-01T00:00:00Z"),
        ("2024-01-01T10:11:12", "2024-01-01T10:11:12Z"),
        ("2024-06-01T10:11:12.987Z", "2024-06-01T10:11:12Z"),
        ("2024-06-01T00:30:00-01:00", "2024-06-01T01:30:00Z"),
    ],
)
def test_parse_time(text: str, expected: str) -> None:
    assert format_zoom_time(parse_time(text)) == expected


@pytest.mark.parametrize("text", ["2024-13-01", "yesterday", "", "2024-02-30T00:00:00Z"])
def test_parse_time_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_time(text)


def pendulum_parse_time(text: str) -> str:
    """parse_time as it was, pendulum reading every form: the result in Zoom's form, or the error's type."""
    try:
        read = pendulum.parse(text, strict=False, tz="UTC")
        if not isinstance(read, dt.datetime):
            return "ValueError"
        parsed = read if read.tzinfo is not None else read.replace(tzinfo=UTC)
        return format_zoom_time(dt.datetime.fromtimestamp(parsed.timestamp(), UTC))
    except Exception as exc:  # whatever it raised, the new one must raise the same
        return type(exc).__name__


def tap_parse_time(text: str) -> str:
    try:
        return format_zoom_time(parse_time(text))
    except Exception as exc:
        return type(exc).__name__


def test_parse_time_reads_every_iso_form_as_pendulum_does() -> None:
    # parse_time reads the usual forms with the standard library and leaves the rest to pendulum: the
    # two must agree on every one, valid or not (days out of range, hour 24, leap seconds, offsets)
    dates = ["2024-01-01", "2024-02-29", "2023-02-29", "2024-02-30", "2024-12-31", "2024-13-01", "2024-00-10"]
    times = ["", "T00:00:00", "T23:59:59", "T24:00:00", "T23:59:60", "T12:60:00", "T07:08:09"]
    fractions = ["", ".5", ".123", ".987654", ".1234567"]
    offsets = ["", "Z", "+00:00", "+05:30", "-01:00", "-23:59", "+24:00", "+05:60"]
    forms = sorted(
        {
            date + time + (fraction + offset if time else "")
            for date, time, fraction, offset in itertools.product(dates, times, fractions, offsets)
        }
    )
    differ = [(text, tap_parse_time(text), pendulum_parse_time(text)) for text in forms]
    assert [row for row in differ if row[1] != row[2]] == []
    assert sum(row[1] != "ValueError" for row in differ) > len(forms) / 4  # most are read, not refused


def test_boundary_dedupe_drops_only_the_repeat_on_the_shared_instant() -> None:
    jan = Window(d("2024-01-01"), d("2024-02-01"))
    feb = Window(d("2024-02-01"), d("2024-03-01"))
    dedupe = WindowDedupe(["id"], "t")
    assert dedupe.first_sighting({"id": 1, "t": "2024-02-01T00:00:00Z"}, jan)
    assert dedupe.first_sighting({"id": 2, "t": "2024-01-20T00:00:00Z"}, jan)
    assert not dedupe.first_sighting({"id": 1, "t": "2024-02-01T00:00:00Z"}, feb)
    # another record in the same second is new, and a changed time is a new sighting
    assert dedupe.first_sighting({"id": 3, "t": "2024-02-01T00:00:00Z"}, feb)
    assert dedupe.first_sighting({"id": 1, "t": "2024-02-15T00:00:00Z"}, feb)
    # only adjacent windows share an instant
    apr = Window(d("2024-04-01"), d("2024-05-01"))
    assert dedupe.first_sighting({"id": 9, "t": "2024-03-01T00:00:00Z"}, feb)
    assert dedupe.first_sighting({"id": 9, "t": "2024-04-01T00:00:00Z"}, apr)


def test_window_dedupe_drops_records_a_restarted_window_gives_again() -> None:
    jan = Window(d("2024-01-01"), d("2024-02-01"))
    dedupe = WindowDedupe(["id"], "t")
    assert dedupe.first_sighting({"id": 1, "t": "2024-01-05T00:00:00Z"}, jan)
    assert dedupe.first_sighting({"id": 2, "t": "2024-01-06T00:00:00Z"}, jan)
    # the page token expired: the same window, from its first page
    assert not dedupe.first_sighting({"id": 1, "t": "2024-01-05T00:00:00Z"}, jan)
    assert dedupe.first_sighting({"id": 3, "t": "2024-01-07T00:00:00Z"}, jan)
