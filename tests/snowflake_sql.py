"""Run SQL on the tests' Snowflake stand-in and print each statement's rows as JSON.

Run with the Python of .tools/snowflake (its Snowflake connector; the tests' own environment has
none): ``python snowflake_sql.py PORT DATABASE STATEMENT...``. Prints one JSON list of row lists
per statement, values as text (null as null), as a warehouse client would show them.
"""

from __future__ import annotations

import json
import sys

import snowflake.connector


def main(port: int, database: str, statements: list[str]) -> None:
    """Connect as the tests' loader would, run each statement in turn, print its rows."""
    connection = snowflake.connector.connect(
        account="standin",
        user="tests",
        password="tests",  # the stand-in takes any
        host="127.0.0.1",
        port=port,
        protocol="http",
        database=database,
        network_timeout=120,
    )
    with connection:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
            rows = cursor.fetchall()
            print(json.dumps([[None if v is None else str(v) for v in row] for row in rows]))  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
