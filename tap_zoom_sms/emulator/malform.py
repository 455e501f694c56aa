"""Records as a hostile Zoom sends them: text no target can take, fields of the wrong shape, no key.

A share of the records served (``malformed_share`` in the emulator's config) is changed
on its way out, each in one way drawn from its id: the same record is changed the same
way at every read, as a fault in Zoom's data would be. Nothing is changed that would
take data away that the tap could still deliver: a message loses its key or has its
attachments replaced by a string only when it has no attachments. The account's own
records (the ground truth) are never changed.
"""

from __future__ import annotations

import hashlib
import typing as t

from tap_zoom_sms.windows import parse_time

#: The ways a record of each list is changed.
KINDS: dict[str, tuple[str, ...]] = {
    "sms_histories": (
        "lone surrogate",
        "nul",
        "array as string",
        "time as epoch seconds",
        "time as epoch milliseconds",
        "attachments as x",
        "null attachment",
        "numeric string",
        "no key",
    ),
    "sms_sessions": ("lone surrogate", "array as string", "time as epoch seconds"),
    "sms": ("lone surrogate", "count as text", "count as numeric string", "array as string"),
}
#: What a record's id field is called in each list.
ID_FIELDS = {"sms_histories": "message_id", "sms_sessions": "session_id", "sms": "engagement_id"}


#: The kinds that break text alone (the others break a field's type, or the key).
TEXT_KINDS = ("lone surrogate", "nul")


def kind_of(
    records_key: str, record: t.Mapping[str, t.Any], share: float, seed: int = 1, only: t.Sequence[str] = ()
) -> str | None:
    """Return how ``record`` is changed when served, or None (drawn from its id: the same at every read).

    ``only``: the kinds to draw from (default: all of the list's).
    """
    kinds = tuple(kind for kind in KINDS[records_key] if not only or kind in only)
    if share <= 0 or not kinds:
        return None
    digest = hashlib.sha256(f"{seed}:{record[ID_FIELDS[records_key]]}".encode()).digest()
    if int.from_bytes(digest[:4], "big") / 2**32 >= share:
        return None
    kind = kinds[digest[4] % len(kinds)]
    if kind in ("no key", "attachments as x") and record.get("attachments"):
        return "null attachment"  # the others would take away what the tap could deliver
    if kind == "numeric string" and record.get("message_type") is None:
        return "time as epoch seconds"  # "None" would be no number at all
    return kind


def malform(
    records_key: str, record: dict[str, t.Any], share: float, seed: int = 1, only: t.Sequence[str] = ()
) -> dict[str, t.Any]:
    """Return ``record`` as a hostile Zoom serves it (a changed copy, or the record itself); ``only`` as kind_of."""
    kind = kind_of(records_key, record, share, seed, only)
    if kind is None:
        return record
    out = dict(record)
    change = _CHANGES[records_key]
    change(out, kind)
    return out


def _message(out: dict[str, t.Any], kind: str) -> None:
    epoch = parse_time(out["date_time"]).timestamp()
    changes: dict[str, t.Callable[[], None]] = {
        "lone surrogate": lambda: out.update(message=f"{out['message']} \ud83d"),
        "nul": lambda: out.update(message=f"{out['message']}\x00"),
        "array as string": lambda: out.update(to_members="+15550000000"),
        "time as epoch seconds": lambda: out.update(date_time=int(epoch)),
        "time as epoch milliseconds": lambda: out.update(date_time=int(epoch * 1000)),
        "attachments as x": lambda: out.update(attachments="x"),
        "null attachment": lambda: out.update(attachments=[None, *(out.get("attachments") or [])]),
        "numeric string": lambda: out.update(message_type=str(out.get("message_type"))),
        "no key": lambda: out.pop("message_id"),
    }
    changes[kind]()


def _session(out: dict[str, t.Any], kind: str) -> None:
    if kind == "lone surrogate":
        out["participants"] = [{**p, "display_name": f"{p.get('display_name')} \udc00"} for p in out["participants"]]
    elif kind == "array as string":
        out["participants"] = "participants"
    else:
        out["last_access_time"] = int(parse_time(out["last_access_time"]).timestamp())


def _engagement(out: dict[str, t.Any], kind: str) -> None:
    if kind == "lone surrogate":
        out["consumer_display_name"] = f"{out.get('consumer_display_name')} \ud83d"
    elif kind == "count as text":
        out["total_sent_messages"] = "many"
    elif kind == "count as numeric string":
        out["total_sent_messages"] = str(out.get("total_sent_messages"))
    else:
        out["sms_types"] = "sms"


_CHANGES: dict[str, t.Callable[[dict[str, t.Any], str], None]] = {
    "sms_histories": _message,
    "sms_sessions": _session,
    "sms": _engagement,
}
