"""Snowflake: meltano.yml's example target-snowflake config, every schema mapped without loss, and
the dbt-snowflake profile reading the loader's settings.

Uses the target-snowflake that scripts/test installs in .tools/snowflake (its own type mapping; no
Snowflake account is needed or contacted); tests/test_snowflake_load.py loads and builds for real
against a stand-in.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / ".tools" / "snowflake" / "bin"
PROFILES = ROOT / "transform" / "profiles" / "profiles.yml"


def _loader() -> dict:
    loaders = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"]
    return next(loader for loader in loaders if loader["name"] == "target-snowflake")


@pytest.fixture(scope="module")
def plugin() -> Path:
    if not (PLUGIN / "python").exists():
        pytest.fail(f"{PLUGIN} is missing: run scripts/test, which installs the Snowflake tools")
    return PLUGIN


def test_example_config_uses_settings_the_target_knows(plugin: Path) -> None:
    about = subprocess.run(  # noqa: S603
        [str(plugin / "target-snowflake"), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    known = set(json.loads(about.stdout)["settings"]["properties"])
    loader = _loader()
    assert set(loader["config"]) <= known
    assert {s["name"] for s in loader["settings"]} <= known
    assert {s["name"] for s in loader["settings"] if s.get("sensitive")} == {"password", "private_key_passphrase"}
    # key-pair authentication is in the example's settings
    assert {"private_key_path", "private_key_passphrase"} <= {s["name"] for s in loader["settings"]}


def test_the_dbt_snowflake_profile_reads_where_the_loader_writes() -> None:
    """Its defaults are target-snowflake's example config; it takes a key pair or a password."""
    profiles = yaml.safe_load(PROFILES.read_text())
    snowflake = profiles["zoom_sms"]["outputs"]["snowflake"]
    defaults = dict(re.findall(r"env_var\('(TARGET_SNOWFLAKE_[A-Z_]+)', '([^']*)'\)", PROFILES.read_text()))
    config = _loader()["config"]
    for key in ("role", "warehouse", "database", "default_target_schema"):
        assert defaults[f"TARGET_SNOWFLAKE_{key.upper()}"] == config[key], key
    assert "TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA" in snowflake["schema"]
    for key in ("account", "user", "password", "private_key_path", "private_key_passphrase"):
        assert f"env_var('TARGET_SNOWFLAKE_{key.upper()}'" in snowflake[key], key
    utilities = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["utilities"]
    [dbt] = [u for u in utilities if u["name"] == "dbt-snowflake"]
    assert dbt["env"]["DBT_TARGET"] == "snowflake"


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
