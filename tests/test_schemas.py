"""The stream schemas hold every field of Zoom's OpenAPI responses, with matching types."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.basestream import SCHEMAS

OPENAPI = Path(__file__).parent / "openapi"  # Zoom's spec, excerpted (see shared/zoom-openapi)


def _items(spec_file: str, path: str, key: str) -> dict:
    spec = json.loads((OPENAPI / spec_file).read_text())
    body = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return body["properties"][key]["items"]


CASES = [
    ("sms_sessions", _items("phone-sms.json", "/phone/sms/sessions", "sms_sessions")),
    ("sms_messages", _items("phone-sms.json", "/phone/sms/sessions/{sessionId}", "sms_histories")),
    (
        "attachments",
        _items("phone-sms.json", "/phone/sms/sessions/{sessionId}", "sms_histories")["properties"]["attachments"][
            "items"
        ],
    ),
    ("contact_center_sms", _items("contact-center-sms.json", "/contact_center/sms", "sms")),
]


def _types(schema: dict) -> set[str]:
    declared = schema.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def _compare(spec: dict, ours: dict, where: str) -> t.Iterator[str]:
    if _types(spec) - _types(ours):
        yield f"{where}: spec says {spec.get('type')}, schema says {ours.get('type')}"
    if "enum" in ours:
        yield f"{where}: enums must stay open"
    if spec.get("type") == "object":
        for name, child in spec.get("properties", {}).items():
            if name not in ours.get("properties", {}):
                yield f"{where}.{name}: missing"
            else:
                yield from _compare(child, ours["properties"][name], f"{where}.{name}")
    if spec.get("type") == "array":
        yield from _compare(spec["items"], ours.get("items", {}), f"{where}[]")


@pytest.mark.parametrize(("stream", "spec"), CASES, ids=[c[0] for c in CASES])
def test_schema_covers_every_documented_field(stream: str, spec: dict) -> None:
    ours = SCHEMAS.fetch_schema(stream)
    assert list(_compare(spec, ours, stream)) == []


@pytest.mark.parametrize("stream", [c[0] for c in CASES])
def test_times_are_date_times_and_unknown_fields_are_allowed(stream: str) -> None:
    ours = SCHEMAS.fetch_schema(stream)
    for name in ("last_access_time", "date_time", "start_time", "end_time", "extension_deleted_time"):
        if name in ours["properties"]:
            assert ours["properties"][name]["format"] == "date-time"
    assert ours.get("additionalProperties", True) is not False
