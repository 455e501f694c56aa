"""The PII recipe (examples/pii-stream-maps.json), through the tap's command line, against the emulator."""

from __future__ import annotations

import hashlib
import json
import typing as t
from pathlib import Path

import pytest

from bench.runner import run_tap
from tap_zoom_sms.emulator import DatasetSpec, Emulator

RECIPE = json.loads((Path(__file__).resolve().parent.parent / "examples" / "pii-stream-maps.json").read_text())


def phone_numbers(record: dict[str, t.Any]) -> t.Iterator[str]:
    for key, value in record.items():
        if key in ("phone_number", "consumer_number", "contact_center_number") and isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from phone_numbers(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from phone_numbers(item)


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=8, sessions=25, engagements=15)) as em:
        yield em


def test_recipe_hashes_phone_numbers_and_drops_message_text(emulator: Emulator, tmp_path: Path) -> None:
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0, **RECIPE)
    run = run_tap(emulator, tmp_path, config)
    assert run.returncode == 0, run.stderr[-2000:]

    raw = {n for _, record in emulator.account.truth() for n in phone_numbers(record)}
    hashed = {hashlib.sha256(n.encode()).hexdigest() for n in raw}
    records = [m for m in run.messages if m["type"] == "RECORD"]
    seen = {n for m in records for n in phone_numbers(m["record"])}
    assert seen
    assert not seen & raw
    assert seen <= hashed
    messages = [m["record"] for m in records if m["stream"] == "sms_messages"]
    assert messages
    assert all("message" not in m for m in messages)
    schema = next(m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == "sms_messages")
    assert "message" not in schema["schema"]["properties"]
    assert {m["stream"] for m in records} == {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}
