"""Print what the demo loaded (rows per table) and one mart the dbt models built (messages_per_day).

Run with the target-duckdb plugin's Python (it has the duckdb module the file was written with,
the one dbt-duckdb builds the models with too).
"""

from __future__ import annotations

import sys

import duckdb

TABLES = ("sms_sessions", "sms_messages", "attachments", "contact_center_sms")
#: The latest rows of the mart, as a support team reads it.
MART = """
select day, session_type, owner_display_name, direction, messages
from zoom_sms_marts.messages_per_day
order by day desc, session_type, owner_display_name, direction limit 12
"""


def main(path: str) -> None:
    """Print the row counts and the mart's latest rows."""
    connection = duckdb.connect(path, read_only=True)
    print("rows per table")  # noqa: T201
    for table in TABLES:
        count = connection.execute(f"select count(*) from zoom_sms.{table}").fetchone()[0]  # noqa: S608
        print(f"  {table:<20} {count:>7}")  # noqa: T201
    print("\nzoom_sms_marts.messages_per_day (dbt model; latest 12 rows)")  # noqa: T201
    print(f"  {'day':<10} {'session_type':<17} {'owner_display_name':<22} {'direction':<9} {'messages':>8}")  # noqa: T201
    for day, session_type, owner, direction, messages in connection.execute(MART).fetchall():
        print(f"  {day!s:<10} {session_type:<17} {owner:<22} {direction:<9} {messages:>8}")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
