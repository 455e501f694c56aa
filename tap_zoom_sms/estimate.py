"""The time a run has left, worked out from what :mod:`tap_zoom_sms.progress` counted.

Two estimates, pure arithmetic over a snapshot of the counts, so that each can be
checked with numbers alone. A stream whose work is known ahead (the sessions, whose
activity lists name each month's fetches) is as far as its requests: the requests that
work still needs (:func:`requests_left`), at the rate requests are made. Any other
stream (Contact Center, a run of one month, the exhaustive walk) is as far as its
written records have come through its range (:func:`range_left`).
"""

from __future__ import annotations

import typing as t

from tap_zoom_sms.windows import next_month_start

if t.TYPE_CHECKING:
    import datetime as dt

    from tap_zoom_sms.windows import Window

#: Seconds of samples a fitted pace needs: over less, a month's steps (its listed sessions
#: written, then those active in it but listed later) are most of what a line would fit.
FIT_SECONDS = 30.0
#: Requests each month's lists take at the least (its sessions by last message, and the two
#: activity lists): what a month not yet read costs beside its fetches.
LIST_REQUESTS = 3


def requests_left(
    work: dict[Window, int], fetched: int, per_fetch: float, start: dt.datetime, end: dt.datetime
) -> float:
    """Return the requests still needed for ``work``, the fetches each window of the range ``start``-``end`` holds.

    ``fetched`` of them have ended, at ``per_fetch`` requests each (a request a page of
    messages, and the retries): each fetch to come takes as many. The windows whose
    activity lists are not read yet hold as many fetches a second of their range as
    those read, and cost LIST_REQUESTS each beside them. What the run did beside its
    fetches (the sample check's walk, the lists read) is done, and not to come again.
    """
    known = sum(work.values())
    read = sum(max(0.0, (min(w.end, end) - max(w.start, start)).total_seconds()) for w in work)
    unread = max(0.0, (end - start).total_seconds() - read)
    fetches = known + (known * unread / read if read > 0 else 0.0)
    lists = LIST_REQUESTS * months_after(max(w.end for w in work), end)
    return max(0.0, fetches - fetched) * per_fetch + lists


def range_left(
    now: float,
    start: dt.datetime,
    end: dt.datetime,
    reached: dt.datetime,
    *,
    samples: list[tuple[float, float]],
    stream_started: float,
) -> float | None:
    """Return the seconds left in a range ``start``-``end`` whose records are written up to ``reached``, or None.

    The part of the range still to write, at the pace the written records move through
    it. Once ``samples`` (when, seconds into the range written) span FIT_SECONDS, that
    pace is a straight line fitted to them, and the line's position now is how far the
    stream is: neither the fixed start before the first record (the token, the first
    lists, the read-ahead filling) nor the steps each month makes sway it. Before that,
    the pace since the first sample (or since ``stream_started``). The range is taken as
    evenly filled: a month much busier than those before it is underestimated until it
    is written.
    """
    total = (end - start).total_seconds()
    done = (reached - start).total_seconds()
    if len(samples) >= 3 and samples[-1][0] - samples[0][0] >= FIT_SECONDS:
        pace, at_now = _fit(samples, now)
        return max(0.0, total - min(at_now, total)) / pace if pace > 0 else None
    since, origin = (samples[0][0], samples[0][1]) if samples and samples[0][1] < done else (stream_started, 0.0)
    if done <= origin or now <= since:
        return None
    return (now - since) * (total - done) / (done - origin)


def months_after(instant: dt.datetime, end: dt.datetime) -> int:
    """Count the calendar-month windows that follow one ending at ``instant``, up to ``end``."""
    count = 0
    boundary = instant
    while boundary < end:
        boundary = next_month_start(boundary)
        count += 1
    return count


def _fit(samples: list[tuple[float, float]], now: float) -> tuple[float, float]:
    """Fit a straight line to (time, position) points by least squares: its slope, and its position at ``now``."""
    count = len(samples)
    mean_t = sum(when for when, _ in samples) / count
    mean_p = sum(position for _, position in samples) / count
    spread = sum((when - mean_t) ** 2 for when, _ in samples)
    if spread <= 0:
        return 0.0, mean_p
    slope = sum((when - mean_t) * (position - mean_p) for when, position in samples) / spread
    return slope, mean_p + slope * (now - mean_t)
