"""Snowflake end to end, offline: the tap, target-snowflake and dbt-snowflake against a stand-in.

The stand-in is fakesnow's server (``fakesnow -s``, on 127.0.0.1), which speaks Snowflake's
protocol to the Snowflake connector over DuckDB. The tap reads the emulator; target-snowflake
loads into the stand-in through tests/snowflake_standin_target.py, which is the target itself with
the few rewrites of its staging SQL that fakesnow needs (listed there, each with why); a second,
incremental load upserts. Then ``dbt build`` with dbt-snowflake (the dbt-snowflake utility's
profile, pointed at the stand-in), and the marts are checked against the figures computed in
Python from the emulator's ground truth, as tests/test_dbt.py does on PostgreSQL. The tools live in
.tools/snowflake (scripts/test installs them), not in the project's .meltano. docs/snowflake.md
says what this proves and what it cannot.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import socket
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.marts import first_responses
from tests.projects import ROOT, TABLES, clean_env
from tests.snowflake_case import loaded_columns, misquoted
from tests.test_dbt import MODELS, WARNS, owners, truth

TOOLS = ROOT / ".tools" / "snowflake" / "bin"
TAP = ROOT / ".venv" / "bin" / "tap-zoom-sms"
DATABASE = "RAW"
#: target-snowflake's default_target_schema in meltano.yml; the queries name it (unquoted, any case)
SCHEMA = "ZOOM_SMS"
#: The passphrase of the test's private key (the loader and dbt authenticate with a key pair, which
#: they must decrypt; the stand-in checks no signature): looked for in the output, where it must not be.
PASSPHRASE = "passphrase-of-the-snowflake-test"
#: An RSA key encrypted with a passphrase, as `openssl pkcs8 -topk8 -v2 des3` makes for Snowflake.
MAKE_KEY = """
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
encryption = serialization.BestAvailableEncryption(sys.argv[2].encode())
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
open(sys.argv[1], "wb").write(pem)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Standin:
    """fakesnow's server on 127.0.0.1, its databases in memory, for one test module."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "fakesnow.log"
        self.process = subprocess.Popen(  # noqa: S603
            [str(TOOLS / "fakesnow"), "-s", "--port", str(self.port)],
            cwd=workdir,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        """Wait (up to a minute) for the server to take connections."""
        for _ in range(600):
            if self.process.poll() is not None:
                pytest.fail(f"fakesnow stopped: {self.log.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        pytest.fail("fakesnow did not listen within a minute")

    def sql(self, *statements: str) -> list[list[list[str | None]]]:
        """The rows of each statement, values as text (tests/snowflake_sql.py)."""
        result = subprocess.run(  # noqa: S603
            [str(TOOLS / "python"), str(ROOT / "tests" / "snowflake_sql.py"), str(self.port), DATABASE, *statements],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads(line) for line in result.stdout.splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Standin]:
    if not (TOOLS / "fakesnow").exists():
        pytest.fail(f"{TOOLS} is missing: run scripts/test, which installs the Snowflake tools")
    server = Standin(tmp_path_factory.mktemp("fakesnow"))
    try:
        server.wait_ready()
        server.sql(f"create database if not exists {DATABASE}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=31, sessions=40, engagements=25)) as em:
        yield em


def load(standin: Standin, emulator: Emulator, workdir: Path, state: Path | None) -> Path:
    """Run the tap into target-snowflake (through the stand-in adapter); return the last STATE's file."""
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    (workdir / "tap.json").write_text(json.dumps(config))
    # meltano.yml's example config, with the stand-in's account and a key pair
    target = {
        "account": "standin",
        "user": "loader",
        "private_key_path": str(workdir / "rsa_key.p8"),
        "private_key_passphrase": PASSPHRASE,
        "database": DATABASE,
        "default_target_schema": SCHEMA,
        "timestamp_type": "TIMESTAMP_TZ",
        "add_record_metadata": True,
    }
    (workdir / "target.json").write_text(json.dumps(target))
    tap_args = [str(TAP), "--config", str(workdir / "tap.json"), *(["--state", str(state)] if state else [])]
    env = clean_env(SNOWFLAKE_STANDIN_PORT=str(standin.port))
    with (workdir / "tap.log").open("w") as tap_log:
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_log, env=env)  # noqa: S603
        target_run = subprocess.run(  # noqa: S603
            [str(TOOLS / "python"), str(ROOT / "tests" / "snowflake_standin_target.py"), "--config", "target.json"],
            stdin=tap.stdout,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert tap.stdout is not None
        tap.stdout.close()
        assert tap.wait(timeout=60) == 0, (workdir / "tap.log").read_text()[-3000:]
    assert target_run.returncode == 0, target_run.stderr[-4000:]
    assert PASSPHRASE not in target_run.stdout + target_run.stderr
    states = [line for line in target_run.stdout.splitlines() if line.strip()]
    last = workdir / f"state-{len(list(workdir.glob('state-*')))}.json"
    last.write_text(states[-1])
    return last


def dbt(
    standin: Standin, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run dbt-snowflake on transform/ with the dbt-snowflake utility's profile and environment."""
    dbt_env = clean_env(
        TARGET_SNOWFLAKE_ACCOUNT="standin",
        TARGET_SNOWFLAKE_USER="transformer",
        TARGET_SNOWFLAKE_PRIVATE_KEY_PATH=str(workdir / "rsa_key.p8"),
        TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE=PASSPHRASE,
        TARGET_SNOWFLAKE_DATABASE=DATABASE,
        TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA=SCHEMA,
        DBT_SNOWFLAKE_HOST="127.0.0.1",
        DBT_SNOWFLAKE_PORT=str(standin.port),
        DBT_SNOWFLAKE_PROTOCOL="http",
        DBT_PROJECT_DIR=str(ROOT / "transform"),
        DBT_PROFILES_DIR=str(ROOT / "transform" / "profiles"),
        DBT_TARGET="snowflake",
        DBT_TARGET_PATH=str(workdir / "target"),
        DBT_LOG_PATH=str(workdir / "logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DBT_USE_COLORS="false",
    )
    return subprocess.run(  # noqa: S603
        [str(TOOLS / "dbt"), *args],
        env={**dbt_env, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's files: configs, the private key, dbt's target and logs."""
    path = tmp_path_factory.mktemp("snowflake")
    subprocess.run([str(TOOLS / "python"), "-c", MAKE_KEY, str(path / "rsa_key.p8"), PASSPHRASE], check=True)  # noqa: S603
    return path


@pytest.fixture(scope="module")
def first_load(standin: Standin, emulator: Emulator, workdir: Path) -> Path:
    """A full load of the emulator's account; the STATE file it ends with."""
    return load(standin, emulator, workdir, None)


@pytest.fixture(scope="module")
def upserted(standin: Standin, emulator: Emulator, workdir: Path, first_load: Path) -> dict[str, str]:
    """A message added to an existing session, then an incremental load from the first's STATE.

    Returns the session's id and the message's, and the session's last_access_time before.
    """
    session_id = next(r["session_id"] for r in truth(emulator)["sms_sessions"])
    query = f"select last_access_time from zoom_sms.sms_sessions where session_id = '{session_id}'"  # noqa: S608
    [[before]] = standin.sql(query)[0]
    assert before
    added = emulator.account.add_message(session_id, dt.datetime.now(dt.UTC).replace(microsecond=0), "upserted")
    load(standin, emulator, workdir, first_load)
    return {"session_id": session_id, "message_id": added["message_id"], "before": before}


@pytest.fixture(scope="module")
def built(standin: Standin, workdir: Path, upserted: dict[str, str]) -> dict[str, str]:
    """``dbt build`` after both loads; the status of each node, from dbt's run_results.json."""
    assert upserted
    result = dbt(standin, workdir, "build")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert PASSPHRASE not in output
    assert PASSPHRASE not in (workdir / "logs" / "dbt.log").read_text()
    results = json.loads((workdir / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: r["status"] for r in results}


def marts(standin: Standin, query: str) -> list[list[str | None]]:
    return standin.sql(query)[0]


def test_the_target_creates_its_tables_with_its_own_types(standin: Standin, first_load: Path) -> None:
    assert first_load.exists()
    rows = standin.sql(
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_schema = 'ZOOM_SMS' and table_name in ('SMS_SESSIONS', 'SMS_MESSAGES')"
    )[0]
    types = {(table, column): data_type for table, column, data_type in rows}
    # upper-case names (created unquoted), VARIANT for the nested lists, TIMESTAMP_TZ (timestamp_type)
    assert types[("SMS_SESSIONS", "PARTICIPANTS")] == "VARIANT"
    assert types[("SMS_SESSIONS", "LAST_ACCESS_TIME")] == "TIMESTAMP_TZ"
    assert types[("SMS_MESSAGES", "MESSAGE")] == "TEXT"
    assert types[("SMS_MESSAGES", "MESSAGE_TYPE")] == "NUMBER"
    assert types[("SMS_MESSAGES", "SENDER")] == "VARIANT"
    assert types[("SMS_MESSAGES", "_SDC_EXTRACTED_AT")] == "TIMESTAMP_TZ"  # add_record_metadata


def test_both_loads_hold_every_record_once_and_the_second_one_updates(
    standin: Standin, emulator: Emulator, upserted: dict[str, str]
) -> None:
    counts = collections.Counter(stream for stream, _ in emulator.account.truth())
    statements = [f"select count(*), count(distinct ({key})) from zoom_sms.{table}" for table, key in TABLES.items()]  # noqa: S608
    loaded = standin.sql(*statements)
    assert {table: tuple(rows[0]) for table, rows in zip(TABLES, loaded, strict=True)} == {
        table: (str(counts[table]), str(counts[table])) for table in TABLES
    }
    # the MERGE updated the session the new message moved (its last_access_time) and inserted the message
    [[after]], [[text]] = standin.sql(
        f"select last_access_time from zoom_sms.sms_sessions where session_id = '{upserted['session_id']}'",  # noqa: S608
        f"select message from zoom_sms.sms_messages where message_id = '{upserted['message_id']}'",  # noqa: S608
    )
    assert after is not None
    assert after > upserted["before"]
    assert text == "upserted"


def test_dbt_authenticates_with_the_key_pair_the_profile_reads(
    built: dict[str, str], standin: Standin, workdir: Path
) -> None:
    """The profile hands dbt the key and its passphrase (`built` runs with the right one): a wrong
    passphrase cannot decrypt the key."""
    assert built
    env = {"TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "not-the-passphrase"}
    wrong = dbt(standin, workdir, "debug", env=env)
    assert wrong.returncode != 0
    assert "could not decrypt key" in wrong.stdout + wrong.stderr


def test_every_model_builds_and_every_dbt_test_passes(built: dict[str, str]) -> None:
    assert {name: status for name, status in built.items() if name in MODELS} == dict.fromkeys(MODELS, "success")
    tests = {name: status for name, status in built.items() if name not in MODELS}
    assert len(tests) > 30
    assert {name: status for name, status in tests.items() if status != "pass"} == dict.fromkeys(WARNS, "warn")


def test_marts_hold_the_same_figures_as_on_postgresql(
    built: dict[str, str], standin: Standin, emulator: Emulator
) -> None:
    assert built
    records = truth(emulator)
    session_type = {s["session_id"]: s["session_type"] for s in records["sms_sessions"]}
    owner = {sid: p["owner"]["id"] for sid, p in owners(records).items()}
    per_day = collections.Counter(
        (m["date_time"][:10], session_type[m["session_id"]], owner[m["session_id"]], m["direction"])
        for m in records["sms_messages"]
    )
    responses, per_day_rows, engagements = standin.sql(
        "select message_id, response_seconds from zoom_sms_marts.first_response_times",
        "select day, session_type, owner_id, direction, messages from zoom_sms_marts.messages_per_day",
        "select cc_queue_id, agent_user_id, engagements, inbound_engagements, outbound_engagements,"
        " total_sent_messages, total_received_messages from zoom_sms_marts.contact_center_engagements",
    )
    assert {r[0]: int(r[1]) if r[1] is not None else None for r in responses} == first_responses(
        records["sms_messages"]
    )
    assert {tuple(r[:4]): float(str(r[4])) for r in per_day_rows} == dict(per_day)
    expected: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    for engagement in records["contact_center_sms"]:
        for queue in engagement["queues"]:
            for agent in engagement["agents"]:
                sums = expected[(queue["cc_queue_id"], agent["user_id"])]
                sums[0] += 1
                sums[1 if engagement["direction"] == "inbound" else 2] += 1
                sums[3] += engagement["total_sent_messages"]
                sums[4] += engagement["total_received_messages"]
    # (the stand-in reads its sums back as decimals, 2.0: compared as numbers)
    assert {(str(r[0]), str(r[1])): [float(str(x)) for x in r[2:]] for r in engagements} == dict(expected)


def test_staging_flattens_the_variant_lists_in_order(
    built: dict[str, str], standin: Standin, emulator: Emulator
) -> None:
    assert built
    records = truth(emulator)
    recipients, types = standin.sql(
        "select message_id, recipient_index, phone_number from zoom_sms_staging.stg_sms_message_recipients",
        "select engagement_id, sms_types from zoom_sms_staging.stg_contact_center_sms",
    )
    assert sorted(tuple(r) for r in recipients) == sorted(
        (m["message_id"], str(i), r["phone_number"])
        for m in records["sms_messages"]
        for i, r in enumerate(m["to_members"], 1)
    )
    assert {r[0]: r[1] for r in types} == {
        e["engagement_id"]: ",".join(e["sms_types"]) for e in records["contact_center_sms"]
    }


def test_the_compiled_sql_quotes_no_loaded_column_in_lower_case(built: dict[str, str], workdir: Path) -> None:
    """On Snowflake "message" is not MESSAGE; the stand-in cannot tell, so the SQL is read instead."""
    assert built
    columns = loaded_columns(ROOT / "schemas")
    compiled = {path: path.read_text() for path in (workdir / "target" / "compiled").rglob("*.sql")}
    assert len(compiled) > 40
    assert {str(path): misquoted(sql, columns) for path, sql in compiled.items() if misquoted(sql, columns)} == {}
    # the loaded column that may be missing is named as stored, quoted; the check catches the
    # lower-case quoting that column_or_null used to write, which the stand-in accepted
    [messages] = [sql for path, sql in compiled.items() if path.name == "stg_sms_messages.sql"]
    assert 'cast("MESSAGE" as' in messages
    assert misquoted(messages.replace('"MESSAGE"', '"message"'), columns) == {"message"}
