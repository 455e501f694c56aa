"""What Zoom sends is input: text no target can take, and records that do not match their schemas.

Each of these stopped a run with a traceback, on every run, or passed a record a strict
target refuses later (see tap_zoom_sms/conform/).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import typing as t
from pathlib import Path

import jsonschema
import pytest

from tap_zoom_sms.conform.records import MalformedRecordError, RecordChecks
from tap_zoom_sms.conform.values import page_has_bad_text, repair_text
from tests.conftest import TapRun, run_tap
from tests.fakezoom import FakeZoom

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
BROKEN_EMOJI = "broken emoji \ud83d"
NUL = "nul \x00 here"


def _three_sessions(zoom: FakeZoom) -> None:
    for n, when in enumerate(("2024-03-05T10:00:00Z", "2024-03-06T10:00:00Z", "2024-03-07T10:00:00Z")):
        zoom.add_session(f"s{n}")
        zoom.add_message(f"s{n}", when, attachments=1)
        zoom.add_message(f"s{n}", when.replace("10:00", "11:00"))


def _conforms(run: TapRun) -> None:
    """Every record emitted matches its declared schema, date-times included."""
    for stream, records in run.records.items():
        schema = json.loads((SCHEMAS / f"{stream}.json").read_text())
        validator = jsonschema.Draft7Validator(schema)
        for record in records:
            validator.validate(record)
            for name, prop in schema["properties"].items():
                if prop.get("format") == "date-time" and record.get(name) is not None:
                    dt.datetime.fromisoformat(record[name].replace("Z", "+00:00"))


def test_lone_surrogates_and_nul_become_u_fffd_in_every_field(zoom: FakeZoom, config: dict, caplog: t.Any) -> None:
    _three_sessions(zoom)
    zoom.add_message("s1", "2024-03-06T12:00:00Z", text=BROKEN_EMOJI, attachments=1, extra_field={"k\ud83d": NUL})
    zoom.add_message("s2", "2024-03-07T12:00:00Z", text=NUL)
    zoom.messages["s1"][-1]["sender"]["display_name"] = "Ana \udc00"
    zoom.messages["s1"][-1]["attachments"][0]["name"] = "photo\ud83d.jpg"
    zoom.sessions["s0"]["participants"][0]["display_name"] = "Bob \ud83d"
    with caplog.at_level(logging.INFO):
        run = run_tap(config)  # run_tap decodes the output as strict UTF-8
    messages = {m["message_id"]: m for m in run.records["sms_messages"]}
    assert len(messages) == 8
    broken = next(m for m in messages.values() if m["message"].startswith("broken"))
    assert broken["message"] == "broken emoji \ufffd"
    assert broken["sender"]["display_name"] == "Ana \ufffd"
    assert broken["extra_field"] == {"k\ufffd": "nul \ufffd here"}
    assert next(m for m in messages.values() if m["message"].startswith("nul"))["message"] == "nul \ufffd here"
    assert {a["name"] for a in run.records["attachments"]} >= {"photo\ufffd.jpg"}
    sessions = {s["session_id"]: s for s in run.records["sms_sessions"]}
    assert sessions["s0"]["participants"][0]["display_name"] == "Bob \ufffd"
    _conforms(run)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("sms_messages: field message: NUL or a lone UTF-16 surrogate replaced" in w for w in warnings)
    final = next(r.getMessage() for r in caplog.records if "end of run" in r.getMessage())
    assert "texts repaired" in final


def test_repair_text_off_keeps_the_text_as_zoom_sent_it(zoom: FakeZoom, config: dict) -> None:
    _three_sessions(zoom)
    zoom.add_message("s1", "2024-03-06T12:00:00Z", text=BROKEN_EMOJI)
    zoom.add_message("s2", "2024-03-07T12:00:00Z", text=NUL)
    run = run_tap({**config, "repair_text": False})
    texts = {m["message"] for m in run.records["sms_messages"]}
    assert BROKEN_EMOJI in texts  # written as the JSON escape \ud83d, read back as the lone surrogate
    assert NUL in texts


def _malform(message: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a hostile Zoom sends, one fault per message (by its text)."""
    faults: dict[str, dict[str, t.Any]] = {
        "to_members as a string": {"to_members": "+15550000001"},
        "date_time as epoch seconds": {"date_time": 1709726400},
        "date_time as epoch milliseconds": {"date_time": 1709726400000},
        "attachments as x": {"attachments": "x"},
        "attachments holding null": {"attachments": [None, *message["attachments"]]},
        "message_type as a string": {"message_type": "2"},
        "message_type as text": {"message_type": "MMS"},
        "date_time not a time": {"date_time": "yesterday"},
        "sender as a list": {"sender": ["Ana"]},
        "attachment without id": {"attachments": [{"name": "x.jpg", "size": "12"}]},
    }
    change = faults.get(message["message"])
    if change is not None:
        message.update(change)
    if message["message"] == "no message_id":
        del message["message_id"]
    return message


def test_malformed_fields_are_coerced_or_nulled_and_the_run_goes_on(
    zoom: FakeZoom, config: dict, caplog: t.Any
) -> None:
    _three_sessions(zoom)
    faults = [
        "to_members as a string",
        "date_time as epoch seconds",
        "date_time as epoch milliseconds",
        "attachments as x",
        "attachments holding null",
        "message_type as a string",
        "message_type as text",
        "date_time not a time",
        "sender as a list",
        "attachment without id",
        "no message_id",
    ]
    for minute, text in enumerate(faults):
        zoom.add_message("s1", f"2024-03-06T12:{minute:02d}:00Z", text=text, attachments=1)
    zoom.mangle["sms_histories"] = _malform
    with caplog.at_level(logging.INFO):
        run = run_tap(config)
    by_text = {m["message"]: m for m in run.records["sms_messages"]}
    assert "no message_id" not in by_text
    assert len(run.records["sms_messages"]) == 6 + len(faults) - 1
    assert by_text["to_members as a string"]["to_members"] is None
    assert by_text["date_time as epoch seconds"]["date_time"] == "2024-03-06T12:00:00Z"
    assert by_text["date_time as epoch milliseconds"]["date_time"] == "2024-03-06T12:00:00Z"
    assert by_text["attachments as x"]["attachments"] is None
    assert len(by_text["attachments holding null"]["attachments"]) == 1
    assert by_text["message_type as a string"]["message_type"] == 2
    assert by_text["message_type as text"]["message_type"] is None
    assert by_text["date_time not a time"]["date_time"] is None
    assert by_text["sender as a list"]["sender"] is None
    attachment_messages = {a["message_id"] for a in run.records["attachments"]}
    assert by_text["attachments holding null"]["message_id"] in attachment_messages
    assert by_text["attachment without id"]["message_id"] not in attachment_messages
    _conforms(run)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    skipped = [w for w in warnings if "skipped a record" in w]
    assert len(skipped) == 2  # the message without an id, the attachment without one
    assert any(w.startswith("sms_messages: skipped a record without a usable message_id (got none)") for w in skipped)
    assert any("/phone/sms/sessions/s1" in w for w in skipped)  # names the session
    assert any(w.startswith("attachments: skipped a record without a usable id") for w in skipped)
    final = next(r.getMessage() for r in caplog.records if "end of run" in r.getMessage())
    assert "2 records skipped" in final
    assert "values nulled" in final
    assert "values coerced" in final
    assert run.last_state is not None


def test_a_session_and_an_engagement_with_malformed_fields(zoom: FakeZoom, config: dict) -> None:
    _three_sessions(zoom)
    zoom.add_engagement("e1", "2024-03-05T10:00:00Z")
    zoom.add_engagement("e2", "2024-03-05T11:00:00Z")

    def session(record: dict[str, t.Any]) -> dict[str, t.Any]:
        if record["session_id"] == "s1":
            record["last_access_time"] = 1709726400
            record["participants"] = "everyone"
        return record

    def engagement(record: dict[str, t.Any]) -> dict[str, t.Any]:
        record["total_sent_messages"] = "many" if record["engagement_id"] == "e1" else "7"
        record["sms_types"] = "sms"
        return record

    zoom.mangle |= {"sms_sessions": session, "sms": engagement}
    run = run_tap(config)
    sessions = {s["session_id"]: s for s in run.records["sms_sessions"]}
    assert sessions["s1"]["last_access_time"] == "2024-03-06T12:00:00Z"
    assert sessions["s1"]["participants"] is None
    assert run.ids("sms_messages", "session_id") == {"s0", "s1", "s2"}
    engagements = {e["engagement_id"]: e for e in run.records["contact_center_sms"]}
    assert engagements["e1"]["total_sent_messages"] is None
    assert engagements["e2"]["total_sent_messages"] == 7
    assert engagements["e1"]["sms_types"] is None
    _conforms(run)


def test_malformed_records_fail_ends_the_run_before_the_bookmark_passes(zoom: FakeZoom, config: dict) -> None:
    _three_sessions(zoom)
    zoom.add_message("s1", "2024-03-06T12:00:00Z", text="message_type as a string")
    zoom.mangle["sms_histories"] = _malform
    run = run_tap({**config, "malformed_records": "fail"}, expect_error=True)
    assert isinstance(run.error, MalformedRecordError)
    assert "sms_messages: field message_type is string" in str(run.error)
    assert "/phone/sms/sessions/s1" in str(run.error)
    bookmarks = [s["bookmarks"].get("sms_sessions", {}).get("replication_key_value") for s in run.states]
    assert all(b is None or b <= "2024-03-01T00:00:00Z" for b in bookmarks), bookmarks


@pytest.mark.parametrize(
    ("value", "declared", "expected"),
    [
        ("2", ["integer", "null"], 2),
        (2.0, ["integer", "null"], 2),
        ("2.5", ["integer", "null"], None),
        (True, ["integer", "null"], None),
        ("1e400", ["number", "null"], None),
        (15551234567, ["string", "null"], "15551234567"),
        ("TRUE", ["boolean", "null"], True),
        (1, ["boolean", "null"], True),
        ({"a": 1}, ["string", "null"], None),
        ("x", ["array", "null"], None),
    ],
)
def test_coercion_is_unambiguous_or_null(value: t.Any, declared: list[str], expected: t.Any) -> None:
    checks = RecordChecks(logging.getLogger("test"))
    schema = {"properties": {"id": {"type": "string"}, "v": {"type": declared}}}
    assert checks.conform("sms_sessions", schema, {"session_id": "s", "id": "i", "v": value}, "here") == {
        "session_id": "s",
        "id": "i",
        "v": expected,
    }


def test_text_repair_and_the_page_check() -> None:
    assert repair_text("a\U0001f600b\ud83dc\x00") == "a\U0001f600b\ufffdc\ufffd"  # a whole emoji is kept
    assert page_has_bad_text(json.dumps({"m": "x\ud83d"}).encode())
    assert page_has_bad_text(json.dumps({"m": "x\x00"}).encode())
    assert not page_has_bad_text(json.dumps({"m": "caf\u00e9 \U0001f600"}, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-06T12:00:00Z", "2024-03-06T12:00:00Z"),
        ("2024-03-06T12:00:00.250+02:00", "2024-03-06T12:00:00.250+02:00"),
        ("2024-03-06 12:00:00", "2024-03-06T12:00:00Z"),  # another notation, taken as UTC as Zoom's are
        (1709726400, "2024-03-06T12:00:00Z"),
        ("1709726400000", "2024-03-06T12:00:00Z"),
        ("2024-13-06T12:00:00Z", None),
        (float("nan"), None),
        (1e300, None),
    ],
)
def test_date_times_are_rfc_3339_or_null(value: t.Any, expected: str | None) -> None:
    checks = RecordChecks(logging.getLogger("test"))
    schema = {"properties": {"when": {"type": ["string", "null"], "format": "date-time"}}}
    assert checks.conform("sms_sessions", schema, {"session_id": "s", "when": value}, "here") == {
        "session_id": "s",
        "when": expected,
    }


def test_a_record_that_fits_is_passed_on_as_it_is() -> None:
    """The common case copies nothing (the cost of the checks is one walk of the record's types)."""
    schema = json.loads((SCHEMAS / "sms_messages.json").read_text())
    record = {
        "message_id": "m1",
        "date_time": "2024-03-06T12:00:00Z",
        "message": "hi",
        "message_type": 1,
        "sender": {"phone_number": "+1555", "owner": {"id": "u", "type": "user"}},
        "to_members": [{"phone_number": "+1556"}],
        "attachments": [{"id": "a", "size": 3}],
        "added_by_zoom_later": {"any": ["thing"]},
    }
    checks = RecordChecks(logging.getLogger("test"))
    assert checks.conform("sms_messages", schema, record, "here", text=False) is record
    assert checks.summary() == ""
