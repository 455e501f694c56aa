"""The Airflow DAG run by Airflow itself (``dag.test()``), its tasks running the real pipeline.

Each test runs the DAG in a throwaway AIRFLOW_HOME (sqlite metadata database) with the
Airflow environment's Python (.tools/airflow), against a copy of this Meltano project
whose plugins are this project's installed ones; the tasks run ``meltano run ...
target-postgres`` against Zoom emulators into the test PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import yaml

from tap_zoom_sms.emulator import DatasetSpec, Emulator, EmulatorConfig
from tests.pg import Postgres
from tests.projects import MELTANO, ROOT, TABLES, clean_env, copy_project, link_plugins, meltano, require, truth_counts

AIRFLOW = ROOT / ".tools" / "airflow" / "bin"
DAGS = ROOT / "orchestrate" / "airflow" / "dags"
MAPPED = "meltano_run"


def project_with_installed_plugins(dest: Path) -> Path:
    """A copy of this project whose .meltano uses this project's installed plugins (the DAG never installs)."""
    for plugin_type in ("extractors", "loaders"):
        require(ROOT / ".meltano" / plugin_type)
    return link_plugins(copy_project(dest))


def add_account(project: Path, name: str, emulator: Emulator) -> None:
    """Add a Zoom account as the README says: an extractor inheriting from tap-zoom-sms, its secret in .env."""
    meltano_yml = project / "meltano.yml"
    definition = yaml.safe_load(meltano_yml.read_text())
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    secret = config.pop("client_secret")
    definition["plugins"]["extractors"].append(
        {"name": name, "inherit_from": "tap-zoom-sms", "load_schema": schema_of(name), "config": config}
    )
    meltano_yml.write_text(yaml.safe_dump(definition, sort_keys=False))
    env_name = name.upper().replace("-", "_")
    with (project / ".env").open("a") as env_file:
        env_file.write(f"{env_name}_CLIENT_SECRET='{secret}'\n")


def schema_of(extractor: str) -> str:
    """The schema an account loads into: zoom_sms for tap-zoom-sms, zoom_sms_<suffix> for the others."""
    return "zoom_sms" + extractor.removeprefix("tap-zoom-sms").replace("-", "_").replace("__", "_")


def airflow_home(folder: Path) -> dict[str, str]:
    """A new AIRFLOW_HOME with its sqlite metadata database migrated; its environment."""
    assert (AIRFLOW / "python").exists(), "scripts/test installs Airflow into .tools/airflow"
    env = clean_env(
        AIRFLOW_HOME=str(folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    )
    result = subprocess.run(  # noqa: S603
        [str(AIRFLOW / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return env


class DagRun(t.NamedTuple):
    """What one dag.test() run did."""

    #: whether the run ended (else it waits for a reschedule or a retry)
    ended: bool
    #: the state of each task instance, by name: a mapped one by its account (its rendered map index),
    #: or ``meltano_run[i]`` where Airflow keeps the bare index (for a task waiting for its retry)
    states: dict[str, str]
    #: Airflow's output and its task logs
    output: str


def run_dag(env: dict[str, str], project: Path, **task_env: str) -> DagRun:
    """Run the DAG once with dag.test() in the Airflow environment ``env``, with the tasks' ``task_env``."""
    result = subprocess.run(  # noqa: S603
        [str(AIRFLOW / "python"), str(ROOT / "tests" / "airflow_dag_run.py"), str(DAGS)],
        env={**env, "MELTANO_PROJECT_ROOT": str(project), "MELTANO_BIN": str(MELTANO), **task_env},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    report = json.loads(next(line for line in reversed(result.stdout.splitlines()) if line.startswith("{")))
    states = {}
    for ti in report["task_instances"]:
        name = ti["task_id"]
        if name == MAPPED:
            label = ti["rendered_map_index"]
            name = f"{MAPPED}[{ti['map_index']}]" if label in (None, str(ti["map_index"])) else label
        states[name] = ti["state"]
    return DagRun(report["ended"], states, output + logs_of(Path(env["AIRFLOW_HOME"])))


def logs_of(home: Path) -> str:
    """Every task log Airflow wrote under ``home``."""
    return "".join(path.read_text(errors="replace") for path in sorted(home.rglob("*.log")))


def target_env(postgres: Postgres) -> dict[str, str]:
    """target-postgres's settings for the test cluster (the schema comes from each extractor)."""
    return {
        "TARGET_POSTGRES_HOST": "127.0.0.1",
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": "postgres",
        "TARGET_POSTGRES_PASSWORD": "unused",
        "TARGET_POSTGRES_DATABASE": "zoom",
    }


def counts(postgres: Postgres, schema: str) -> dict[str, int]:
    """Rows of each table of ``schema``, after checking that no key is loaded twice."""
    out = {}
    for table, key in TABLES.items():
        [[rows, keys]] = postgres.sql(f"select count(*), count(distinct ({key})) from {schema}.{table}")  # noqa: S608
        assert rows == keys, f"{schema}.{table} holds a key twice"
        out[table] = int(rows)
    return out


def states_of(project: Path, *extractors: str) -> dict[str, dict[str, t.Any]]:
    """The STATE Meltano keeps for each extractor's pipeline into target-postgres (its own state id).

    One ``meltano state list`` for them all (each Meltano command costs a second or two of CPU).
    """
    listed = meltano(project, "state", "list").stdout.split()
    states = {}
    for extractor in extractors:
        state_id = f"dev:{extractor}-to-target-postgres"
        assert state_id in listed
        states[extractor] = json.loads(meltano(project, "state", "get", state_id).stdout)
    return states


def bookmarked_streams(state: dict[str, t.Any]) -> set[str]:
    """The streams the STATE holds a bookmark for (on the stream or on its partitions)."""
    streams = state["singer_state"]["bookmarks"]
    return {name for name, value in streams.items() if value.get("replication_key_value") or value.get("partitions")}


def test_the_dag_runs_the_pipeline_and_meltano_keeps_the_state(tmp_path: Path, postgres: Postgres) -> None:
    project = project_with_installed_plugins(tmp_path / "project")
    env = airflow_home(tmp_path / "airflow")
    with Emulator(DatasetSpec(seed=21, sessions=30, engagements=15)) as emulator:
        tap = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
        settings = {f"TAP_ZOOM_SMS_{key.upper()}": str(value) for key, value in tap.items()}
        run = run_dag(env, project, **settings, **target_env(postgres))

        assert run.states == {"zoom_accounts": "success", "tap-zoom-sms": "success"}, run.output[-4000:]
        assert run.ended
        assert counts(postgres, "zoom_sms") == truth_counts(emulator)
        state = states_of(project, "tap-zoom-sms")["tap-zoom-sms"]
        assert bookmarked_streams(state) >= {"sms_sessions", "contact_center_sms"}
        assert emulator.config.client_secret not in run.output


def test_two_accounts_run_as_mapped_tasks_and_a_capped_one_resumes_alone(tmp_path: Path, postgres: Postgres) -> None:
    project = project_with_installed_plugins(tmp_path / "project")
    env = airflow_home(tmp_path / "airflow")
    north_config = EmulatorConfig(account_id="north", client_id="north-client", client_secret="north-secret")
    south_config = EmulatorConfig(
        account_id="south",
        client_id="south-client",
        client_secret="south-secret",
        heavy_daily=3,  # Contact Center's windows need more: the cap stops south's run
    )
    with (
        Emulator(DatasetSpec(seed=31, sessions=25, engagements=20), north_config) as north,
        Emulator(DatasetSpec(seed=32, sessions=35, engagements=20), south_config) as south,
    ):
        add_account(project, "tap-zoom-sms--north", north)
        add_account(project, "tap-zoom-sms--south", south)
        first = run_dag(env, project, **target_env(postgres))

        # tap-zoom-sms itself (the first account, map index 0) has no credentials here: it fails, and
        # neither of the others minds; south reached its daily cap: rescheduled, not failed
        assert first.states == {
            "zoom_accounts": "success",
            "meltano_run[0]": "up_for_retry",
            "tap-zoom-sms--north": "success",
            "tap-zoom-sms--south": "up_for_reschedule",
        }, first.output[-4000:]
        assert not first.ended

        assert counts(postgres, "zoom_sms_north") == truth_counts(north)
        kept = states_of(project, "tap-zoom-sms--north", "tap-zoom-sms--south")
        assert bookmarked_streams(kept["tap-zoom-sms--north"]) >= {"sms_sessions", "contact_center_sms"}
        # south: the phone streams (Medium) finished, Contact Center (Heavy) stopped at the cap, STATE saved
        capped = counts(postgres, "zoom_sms_south")
        expected = truth_counts(south)
        assert {k: v for k, v in capped.items() if k != "contact_center_sms"} == {
            k: v for k, v in expected.items() if k != "contact_center_sms"
        }
        assert capped["contact_center_sms"] < expected["contact_center_sms"]
        assert "sms_sessions" in bookmarked_streams(kept["tap-zoom-sms--south"])
        first_run_details = south.stats.endpoints["session_details"]

        # after the reset (a new DAG run stands in for the rescheduled try: the same command, the same
        # STATE; dag.test() cannot wait until tomorrow): south resumes from its STATE and completes
        south.config.heavy_daily = 0
        second = run_dag(env, project, **target_env(postgres))
        assert second.states["tap-zoom-sms--south"] == "success", second.output[-4000:]
        assert second.states["tap-zoom-sms--north"] == "success"
        assert counts(postgres, "zoom_sms_south") == expected
        assert south.stats.endpoints["session_details"] - first_run_details < first_run_details / 2
        assert counts(postgres, "zoom_sms_north") == truth_counts(north)
        for secret in ("north-secret", "south-secret"):
            assert secret not in first.output + second.output
