"""Identifiers that a Snowflake stand-in accepts and Snowflake itself would not.

target-snowflake creates its columns unquoted, so Snowflake stores them in upper case (MESSAGE).
Unquoted, ``message`` in a model resolves to MESSAGE; quoted, ``"message"`` names another column,
which does not exist, on Snowflake (its documented identifier rules), while the stand-in (DuckDB,
which ignores case) still finds it. So a quoted name of a loaded column that is not in upper case
is an error on Snowflake that no test against the stand-in would show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

QUOTED = re.compile(r'"((?:[^"]|"")+)"')


def loaded_columns(schemas: Path) -> set[str]:
    """The columns target-snowflake creates from the tap's schemas, as Snowflake stores them."""
    return {name.upper() for path in schemas.glob("*.json") for name in json.loads(path.read_text())["properties"]}


def misquoted(sql: str, columns: set[str]) -> set[str]:
    """The quoted identifiers in ``sql`` that name a loaded column in other than upper case."""
    return {name for name in QUOTED.findall(sql) if name.upper() in columns and name != name.upper()}
