"""target-snowflake, loading into the tests' Snowflake stand-in (fakesnow's server), not Snowflake.

Run with the Python of .tools/snowflake, as the target's entry point (tests/test_snowflake_load.py
does): ``python snowflake_standin_target.py --config CONFIG``, with SNOWFLAKE_STANDIN_PORT set. It
is the target itself: its table creation, type mapping, file format, PUT of its batch files and
MERGE are its own SQL. Only what fakesnow cannot run is rewritten, each rewrite below with why:

1. Connection: the stand-in's host, port and http. target-snowflake has no such settings (it
   connects to <account>.snowflakecomputing.com); the Snowflake connector takes them as arguments.
   And the schema it loads into as the session's: fakesnow's MERGE creates its work table without
   naming a schema, which needs a current one (Snowflake's own MERGE needs none).
2. ``PUT ... '@~/target-snowflake/<sync>'`` becomes ``PUT ... @ZOOM_SMS_STANDIN_STAGE/...``:
   fakesnow has no user stage (``@~``) and takes no quoted stage name; a named stage, created once
   here, stands for the user stage.
3. The MERGE's source, ``select $1:<col>::<type> ... from '@~/target-snowflake/<sync>'
   (file_format => <format>)``: fakesnow cannot select from a stage. The staged files are read
   into a table by ``COPY INTO`` with the target's own file format, and ``$1`` (to DuckDB, a bind
   parameter) becomes that table's one VARIANT column.
4. ``ORDER BY SEQ8()`` in the MERGE source's QUALIFY: fakesnow makes SEQ8() a window function,
   and DuckDB allows none inside a window. SEQ8() is taken over the staged rows, in file order, in
   an inner select, and the window orders by that column.
5. The QUALIFY moves to an outer select over the source's columns: inside the MERGE, DuckDB binds
   its key (an alias of the select list) to the target table's column of the same name, a LATERAL
   reference that its join cannot take.
6. ``REMOVE '@~/target-snowflake/<sync>/'``: fakesnow has no REMOVE. The table of rewrite 3 is
   dropped instead; the staged files stay in the stand-in's stage until its server stops.
7. ``DROP FILE FORMAT``, when a sink is done: fakesnow has no such statement. It is not run; the
   file format stays in the stand-in until its server stops.

Any other statement the target sends goes to the stand-in unchanged.
"""

from __future__ import annotations

import os
import re
import typing as t

import sqlalchemy
from sqlalchemy.sql import text
from target_snowflake.connector import SnowflakeConnector
from target_snowflake.target import TargetSnowflake

#: The named stage of rewrite 2, in the schema the target loads into (fakesnow needs a schema).
STAGE = "ZOOM_SMS_STANDIN_STAGE"
USER_STAGE = re.compile(r"'@~/target-snowflake/([^'/]+)/?'")
MERGE_SOURCE = re.compile(
    r"\(select (?P<columns>.*) from '@~/target-snowflake/(?P<sync>[^']+)'\(file_format => (?P<format>.+?)\) "
    r"QUALIFY ROW_NUMBER\(\) OVER \(PARTITION BY (?P<keys>.+?) ORDER BY SEQ8\(\) DESC\) = 1\) s ",
    re.DOTALL,
)

Statement = tuple[sqlalchemy.TextClause, dict[str, t.Any]]


def staged_rows_table(sync_id: str) -> str:
    """The table that holds one sync's staged rows (rewrite 3), in the session's schema."""
    return "STANDIN_STAGED_" + re.sub(r"\W", "_", sync_id).upper()


def rewrite_put(sql: str, stage: str) -> str:
    """Rewrite 2: the user stage as the named stage, unquoted."""
    return USER_STAGE.sub(lambda m: f"@{stage}/target-snowflake/{m.group(1)}", sql)


def rewrite_merge_source(sql: str, schema: str) -> tuple[str, str, str]:
    """Rewrites 3 to 5 of the MERGE; returns it, the sync id and the file format it names."""
    match = MERGE_SOURCE.search(sql)
    if match is None:
        raise RuntimeError(f"target-snowflake's MERGE is not the one the stand-in adapter knows: {sql[:300]}")
    columns = match["columns"].replace("$1:", "STAGED_ROW:")
    table = f"{schema}.{staged_rows_table(match['sync'])}"
    # the target's own columns and keys, moved into the two selects
    source = (
        f"(select * from (select {columns}, STAGED_SEQ"  # noqa: S608
        f" from (select STAGED_ROW, seq8() as STAGED_SEQ from {table}))"
        f" QUALIFY ROW_NUMBER() OVER (PARTITION BY {match['keys']} ORDER BY STAGED_SEQ DESC) = 1) s "
    )
    return sql[: match.start()] + source + sql[match.end() :], match["sync"], match["format"]


class StandinConnector(SnowflakeConnector):
    """The target's connector with the rewrites above; every other method is the target's."""

    @property
    def schema(self) -> str:
        """The database and schema the target loads into, qualified, as its sinks name them."""
        return f"{self.config['database']}.{self.config['default_target_schema']}".upper()

    @property
    def stage(self) -> str:
        """The named stage of rewrite 2."""
        return f"{self.schema}.{STAGE}"

    def get_connect_args(self) -> dict[str, t.Any]:
        """Rewrite 1: the stand-in's address, beside the target's own arguments."""
        port = int(os.environ["SNOWFLAKE_STANDIN_PORT"])
        schema = self.config["default_target_schema"].upper()
        return {**super().get_connect_args(), "host": "127.0.0.1", "port": port, "protocol": "http", "schema": schema}

    def _get_put_statement(self, sync_id: str, file_uri: str) -> Statement:
        """Rewrite 2, once the named stage exists."""
        statement, kwargs = super()._get_put_statement(sync_id=sync_id, file_uri=file_uri)
        with self._connect() as conn, conn.begin():
            conn.execute(text(f"create stage if not exists {self.stage}"))
        return text(rewrite_put(statement.text, self.stage)), kwargs

    def _get_merge_from_stage_statement(self, *args: t.Any, **kwargs: t.Any) -> Statement:
        """Rewrites 3 to 5: the staged rows copied into their table, then the MERGE over them."""
        statement, params = super()._get_merge_from_stage_statement(*args, **kwargs)
        sql, sync_id, file_format = rewrite_merge_source(statement.text, self.schema)
        table = f"{self.schema}.{staged_rows_table(sync_id)}"
        with self._connect() as conn, conn.begin():
            conn.execute(text(f"create or replace table {table} (STAGED_ROW variant)"))
            conn.execute(
                text(
                    f"copy into {table} from @{self.stage}/target-snowflake/{sync_id}"
                    f" file_format = (format_name = '{file_format}')"
                )
            )
        return text(sql), params

    def remove_staged_files(self, sync_id: str) -> None:
        """Rewrite 6: drop the table of the staged rows (fakesnow has no REMOVE)."""
        with self._connect() as conn, conn.begin():
            conn.execute(text(f"drop table if exists {self.schema}.{staged_rows_table(sync_id)}"))

    def drop_file_format(self, file_format: str) -> None:
        """Rewrite 7: leave the file format (fakesnow cannot drop one)."""
        self.logger.info("Stand-in: file format %s left in place (fakesnow has no DROP FILE FORMAT)", file_format)


def main() -> None:
    """Run target-snowflake's own command line with the stand-in's connector."""
    TargetSnowflake.default_sink_class.connector_class = StandinConnector
    TargetSnowflake.cli()


if __name__ == "__main__":
    main()
