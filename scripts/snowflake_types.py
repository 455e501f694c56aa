"""Print the Snowflake column type target-snowflake gives each property of the tap's schemas.

Run with the Python of .tools/snowflake, where scripts/test installs target-snowflake
(tests/test_snowflake.py does): it uses the target's own JSON Schema to SQL mapping, without
connecting to Snowflake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from target_snowflake.connector import SnowflakeConnector


def main(schemas: Path, config: str) -> None:
    """Print {stream: {property: SQL type}} as JSON, for the target config given as JSON."""
    connector = SnowflakeConnector(config=json.loads(config))
    out = {}
    for path in sorted(schemas.glob("*.json")):
        schema = json.loads(path.read_text())
        out[path.stem] = {name: str(connector.to_sql_type(prop)) for name, prop in schema["properties"].items()}
    print(json.dumps(out))  # noqa: T201


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
