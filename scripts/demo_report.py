"""Print what the demo loaded: rows per table and messages per session type per month.

Run with the target-duckdb plugin's Python (it has the duckdb module the file was written with).
"""

from __future__ import annotations

import sys

import duckdb

TABLES = ("sms_sessions", "sms_messages", "attachments", "contact_center_sms")
QUERY = """
select s.session_type, strftime(m.date_time, '%Y-%m') as month, count(*) as messages
from zoom_sms.sms_messages m join zoom_sms.sms_sessions s using (session_id)
group by all order by month desc, session_type limit 12
"""


def main(path: str) -> None:
    """Print the row counts and the sample query's result."""
    connection = duckdb.connect(path, read_only=True)
    print("rows per table")  # noqa: T201
    for table in TABLES:
        count = connection.execute(f"select count(*) from zoom_sms.{table}").fetchone()[0]  # noqa: S608
        print(f"  {table:<20} {count:>7}")  # noqa: T201
    print("\nmessages per session type per month (latest 12 rows)")  # noqa: T201
    print(f"  {'session_type':<20} {'month':<8} {'messages':>8}")  # noqa: T201
    for session_type, month, messages in connection.execute(QUERY).fetchall():
        print(f"  {session_type:<20} {month:<8} {messages:>8}")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
