"""Snowflake: meltano.yml's example target-snowflake config, and every schema mapped without loss.

Uses the target-snowflake plugin that scripts/test installs (its own type mapping; no Snowflake
account is needed or contacted).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / ".meltano" / "loaders" / "target-snowflake" / "venv" / "bin"


def _loader() -> dict:
    loaders = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"]
    return next(loader for loader in loaders if loader["name"] == "target-snowflake")


@pytest.fixture(scope="module")
def plugin() -> Path:
    if not (PLUGIN / "python").exists():
        pytest.fail(f"{PLUGIN} is missing: run scripts/test, which installs the Meltano plugins")
    return PLUGIN


def test_example_config_uses_settings_the_target_knows(plugin: Path) -> None:
    about = subprocess.run(  # noqa: S603
        [str(plugin / "target-snowflake"), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    known = set(json.loads(about.stdout)["settings"]["properties"])
    loader = _loader()
    assert set(loader["config"]) <= known
    assert {s["name"] for s in loader["settings"]} <= known
    assert {s["name"] for s in loader["settings"] if s.get("sensitive")} == {"password"}


def test_every_schema_maps_to_snowflake_types_without_loss(plugin: Path) -> None:
    result = subprocess.run(  # noqa: S603
        [
            str(plugin / "python"),
            str(ROOT / "scripts" / "snowflake_types.py"),
            str(ROOT / "schemas"),
            json.dumps(_loader()["config"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    columns = json.loads(result.stdout)
    assert set(columns) == {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}
    for stream, types in columns.items():
        schema = json.loads((ROOT / "schemas" / f"{stream}.json").read_text())
        names = [name.upper() for name in types]
        assert len(names) == len(set(names)), f"{stream}: names that collide once upper-cased"
        for name, sql_type in types.items():
            prop = schema["properties"][name]
            declared = {prop["type"]} if isinstance(prop["type"], str) else set(prop["type"])
            if declared & {"object", "array"}:
                expected = "VARIANT"  # nested objects and arrays keep their whole structure
            elif prop.get("format") == "date-time":
                expected = "TIMESTAMP_TZ"
            elif "integer" in declared:
                expected = "DECIMAL"  # NUMBER(38,0)
            elif "boolean" in declared:
                expected = "BOOLEAN"
            else:
                expected = "VARCHAR"
            assert sql_type == expected, f"{stream}.{name}: {sql_type}, expected {expected}"
