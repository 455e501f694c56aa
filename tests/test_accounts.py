"""Several Zoom accounts' runs at once, sharing one Meltano system database, as docs/accounts.md says.

Two accounts, added as the README says (extractors inheriting from tap-zoom-sms), each against its
own emulator, run ``meltano run ... target-postgres`` at the same moment in a copy of this project,
twice: with Meltano's system database on PostgreSQL (``MELTANO_DATABASE_URI``, what workers on
several machines share) and with the default sqlite file. Both runs complete, each account's schema
holds its own account's data, and each keeps its own STATE, from which the second pair of runs
resumes and takes what was new.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import typing as t

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator, EmulatorConfig
from tests.emulator_client import EmulatorClient
from tests.pg import Postgres
from tests.projects import MELTANO, ROOT, clean_env, meltano, truth_counts
from tests.readme import meltano_lines, run_as_written
from tests.test_airflow_run import (
    add_account,
    bookmarked_streams,
    counts,
    project_with_installed_plugins,
    schema_of,
    target_env,
)

if t.TYPE_CHECKING:
    from pathlib import Path

ACCOUNTS_DOC = ROOT / "docs" / "accounts.md"
#: The system database of each case: MELTANO_DATABASE_URI, or the default .meltano/meltano.db.
SYSTEM_DATABASES = ("postgresql", "sqlite")


def deploy_block() -> str:
    """docs/accounts.md's block that points Meltano at PostgreSQL and makes the system database's tables."""
    blocks = re.findall(r"^```bash\n(.*?)^```", ACCOUNTS_DOC.read_text(), re.MULTILINE | re.DOTALL)
    return next(block for block in blocks if "MELTANO_DATABASE_URI" in block)


def system_database(postgres: Postgres, kind: str) -> dict[str, str]:
    """The environment that points Meltano at a new system database of ``kind``, as the docs write the URI."""
    if kind == "sqlite":
        return {}
    (uri,) = re.findall(r"MELTANO_DATABASE_URI='([^']+)'", deploy_block())
    postgres.sql("create database meltano", database="postgres")
    return {"MELTANO_DATABASE_URI": uri.replace("USER:PASSWORD@HOST:5432", f"postgres@127.0.0.1:{postgres.port}")}


def run_at_once(project: Path, extractors: list[str], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Start ``meltano run <extractor> target-postgres`` for every extractor together; wait for all."""
    runs = [
        subprocess.Popen(  # noqa: S603
            [str(MELTANO), "run", "--no-install", extractor, "target-postgres"],
            cwd=project,
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for extractor in extractors
    ]
    results = []
    for run in runs:
        output, _ = run.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(run.args, run.returncode, output, ""))
    return results


def states(project: Path, env: dict[str, str]) -> dict[str, dict[str, t.Any]]:
    """Every STATE Meltano keeps in the system database ``env`` names, by state id, as Meltano gives them."""
    ids = meltano(project, "state", "list", env=env).stdout.split()
    return {state_id: json.loads(meltano(project, "state", "get", state_id, env=env).stdout) for state_id in ids}


def stored_states(project: Path, postgres: Postgres, kind: str) -> dict[str, dict[str, t.Any]]:
    """Every STATE the system database of ``kind`` holds, read from its table (no Meltano start)."""
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(project / ".meltano" / "meltano.db")) as db:
            rows = db.execute("select state_id, completed_state from state").fetchall()
    else:
        rows = postgres.sql("select state_id, completed_state::jsonb::text from state", database="meltano")
    return {state_id: json.loads(state) for state_id, state in rows}


def new_message(emulator: Emulator) -> str:
    """A message Zoom shows after the first run, in a new session; its id."""
    return str(EmulatorClient(emulator).admin("messages", session_id=None, text="after the first run")[0]["message_id"])


@pytest.mark.parametrize("kind", SYSTEM_DATABASES)
def test_two_accounts_run_at_once_and_each_keeps_its_own_state(tmp_path: Path, postgres: Postgres, kind: str) -> None:
    project = project_with_installed_plugins(tmp_path / "project")
    env = {**target_env(postgres), **system_database(postgres, kind)}
    # the deploy step of docs/accounts.md: the system database's tables made before runs start together
    for line in meltano_lines(deploy_block()):
        result = run_as_written(project, line, env)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    names = [f"tap-zoom-sms--{kind}-north", f"tap-zoom-sms--{kind}-south"]
    configs = [
        EmulatorConfig(account_id=name, client_id=f"{name}-id", client_secret=f"{name}-secret") for name in names
    ]
    with (
        Emulator(DatasetSpec(seed=41, sessions=10, engagements=4), configs[0]) as north,
        Emulator(DatasetSpec(seed=42, sessions=12, engagements=5), configs[1]) as south,
    ):
        emulators = dict(zip(names, (north, south), strict=True))
        for name, emulator in emulators.items():
            add_account(project, name, emulator)

        first = run_at_once(project, names, env)
        assert [run.returncode for run in first] == [0, 0], [run.stdout[-3000:] for run in first]
        for name, emulator in emulators.items():
            assert counts(postgres, schema_of(name)) == truth_counts(emulator)
        kept = states(project, env)
        assert sorted(kept) == [f"dev:{name}-to-target-postgres" for name in names]
        for state in kept.values():
            assert bookmarked_streams(state) >= {"sms_sessions", "contact_center_sms"}

        # the second pair resumes from each account's own STATE and takes what Zoom shows since
        added = {name: new_message(emulator) for name, emulator in emulators.items()}
        first_details = {name: emulator.stats.endpoints["session_details"] for name, emulator in emulators.items()}
        second = run_at_once(project, names, env)
        assert [run.returncode for run in second] == [0, 0], [run.stdout[-3000:] for run in second]
        for name, emulator in emulators.items():
            # from its bookmarks: the new session's messages, not every session's again
            assert emulator.stats.endpoints["session_details"] - first_details[name] < first_details[name] / 2
            assert counts(postgres, schema_of(name)) == truth_counts(emulator)
            loaded = {row[0] for row in postgres.sql(f"select message_id from {schema_of(name)}.sms_messages")}  # noqa: S608
            assert added[name] in loaded
            assert not (set(added.values()) - {added[name]}) & loaded  # the other account's stays in its schema
        # each account's STATE moved on from its own first one (the new session), every stream still bookmarked
        resumed = stored_states(project, postgres, kind)
        assert sorted(resumed) == sorted(kept)
        for state_id, state in resumed.items():
            assert bookmarked_streams(state) >= {"sms_sessions", "contact_center_sms"}
            sessions = state["singer_state"]["bookmarks"]["sms_sessions"]
            assert sessions != kept[state_id]["singer_state"]["bookmarks"]["sms_sessions"]
    if kind == "postgresql":  # the STATE lives in PostgreSQL, and no sqlite file was made beside it
        assert not (project / ".meltano" / "meltano.db").exists()
