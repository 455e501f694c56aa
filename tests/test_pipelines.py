"""The pipeline a user runs: Meltano runs the tap, real Singer targets load real databases.

Needs what ``scripts/test`` installs: Meltano in .tools/meltano, the plugins in .meltano/,
and PostgreSQL's server from Debian's packages (a private cluster is started on 127.0.0.1).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import typing as t
import uuid
from pathlib import Path

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.emulator_client import EmulatorClient
from tests.pg import Postgres
from tests.projects import (
    MELTANO,
    ROOT,
    TABLES,
    duckdb_counts,
    meltano_tree,
    project_with_plugins,
    require,
    state_ids,
    tap_env,
    truth_counts,
)

DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"


@pytest.fixture(scope="module")
def emulator() -> t.Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=5, sessions=60, engagements=30)) as em:
        yield em


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this project with its installed plugins: the runs' STATE is the copy's, not the user's."""
    return project_with_plugins(tmp_path_factory.mktemp("pipelines") / "project")


def meltano_run(project: Path, emulator: Emulator, target: str, state_suffix: str, env: dict[str, str]) -> None:
    require(MELTANO)
    require(ROOT / ".meltano" / "loaders" / target)
    result = subprocess.run(  # noqa: S603
        [str(MELTANO), "--log-level=warning", "run", "--state-id-suffix", state_suffix, "tap-zoom-sms", target],
        cwd=project,
        env={**os.environ, **tap_env(emulator), **env, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert emulator.config.client_secret not in result.stdout + result.stderr


def postgres_env(postgres: Postgres) -> dict[str, str]:
    """target-postgres's settings for the throwaway cluster, as Meltano environment variables."""
    return {
        "TARGET_POSTGRES_HOST": "127.0.0.1",
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": "postgres",
        "TARGET_POSTGRES_PASSWORD": "unused",
        "TARGET_POSTGRES_DATABASE": "zoom",
    }


def test_meltano_into_postgres_loads_everything_and_upserts(
    postgres: Postgres, emulator: Emulator, project: Path
) -> None:
    env = postgres_env(postgres)
    suffix = uuid.uuid4().hex
    meltano_run(project, emulator, "target-postgres", suffix, env)

    def counts() -> dict[str, tuple[int, int]]:
        out = {}
        for table, key in TABLES.items():
            rows = postgres.sql(f"select count(*), count(distinct ({key})) from zoom_sms.{table}")  # noqa: S608
            out[table] = (int(rows[0][0]), int(rows[0][1]))
        return out

    expected = truth_counts(emulator)
    assert counts() == {table: (n, n) for table, n in expected.items()}

    # a second, incremental run after new messages: upserted, no duplicate keys, the session updated
    client = EmulatorClient(emulator)
    session_id = postgres.sql("select session_id from zoom_sms.sms_sessions order by last_access_time limit 1")[0][0]
    added = client.admin("messages", session_id=session_id, count=2, text="follow-up")
    meltano_run(project, emulator, "target-postgres", suffix, env)

    expected = truth_counts(emulator)
    assert counts() == {table: (n, n) for table, n in expected.items()}
    last = postgres.sql(f"select last_access_time from zoom_sms.sms_sessions where session_id = '{session_id}'")  # noqa: S608
    assert last[0][0].startswith(added[-1]["date_time"][:10])
    texts = postgres.sql(f"select message from zoom_sms.sms_messages where message_id = '{added[0]['message_id']}'")  # noqa: S608
    assert texts == [["follow-up"]]
    sender = postgres.sql("select sender->>'phone_number' from zoom_sms.sms_messages limit 1")
    assert sender[0][0]


def test_meltano_into_duckdb_loads_everything(tmp_path: Path, emulator: Emulator, project: Path) -> None:
    require(DUCKDB_PYTHON)
    database = tmp_path / "zoom.duckdb"
    meltano_run(project, emulator, "target-duckdb", uuid.uuid4().hex, {"TARGET_DUCKDB_FILEPATH": str(database)})
    assert duckdb_counts(DUCKDB_PYTHON, database) == {table: (n, n) for table, n in truth_counts(emulator).items()}


def test_text_postgres_refuses_arrives_repaired(postgres: Postgres, project: Path) -> None:
    """Half an emoji and a NUL in a message: target-postgres loads them as U+FFFD (both stopped every run)."""
    with Emulator(DatasetSpec(seed=8, sessions=6, engagements=0, months=2)) as em:
        session_id = em.account.sessions_between(em.account.start, em.account.anchor, "all")[0]
        when = em.account.anchor - dt.timedelta(hours=1)
        broken = em.account.add_message(session_id, when, "broken emoji \ud83d")
        nul = em.account.add_message(session_id, when + dt.timedelta(minutes=1), "nul \x00 here")
        env = {**postgres_env(postgres), "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "zoom_text"}
        meltano_run(project, em, "target-postgres", uuid.uuid4().hex, env)
        expected = truth_counts(em)["sms_messages"]
    ids = f"'{broken['message_id']}', '{nul['message_id']}'"
    rows = postgres.sql(f"select message from zoom_text.sms_messages where message_id in ({ids}) order by message")  # noqa: S608
    assert rows == [["broken emoji \ufffd"], ["nul \ufffd here"]]
    assert int(postgres.sql("select count(*) from zoom_text.sms_messages")[0][0]) == expected


def test_a_pipeline_run_leaves_the_projects_own_meltano_alone(tmp_path: Path, project: Path) -> None:
    """A user who runs the tests then ``meltano state list`` sees only their own state IDs."""
    require(DUCKDB_PYTHON)
    ids = state_ids(ROOT)
    tree = meltano_tree(ROOT)  # after reading the ids, which touches SQLite's shared-memory file
    with Emulator(DatasetSpec(seed=9, sessions=3, engagements=2, months=1)) as em:
        suffix = uuid.uuid4().hex
        meltano_run(project, em, "target-duckdb", suffix, {"TARGET_DUCKDB_FILEPATH": str(tmp_path / "zoom.duckdb")})
    assert meltano_tree(ROOT) == tree
    assert state_ids(ROOT) == ids
    assert f"dev:tap-zoom-sms-to-target-duckdb:{suffix}" in state_ids(project)
