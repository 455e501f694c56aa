"""The Airflow example: Airflow's DagBag loads it, it maps one task per account, and a task reschedules
at Zoom's daily cap. tests/test_airflow_run.py runs it with Airflow itself.

Airflow runs in its own environment (.tools/airflow, installed by scripts/test):
its dependencies would not fit beside the tap's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import typing as t
from pathlib import Path

import pytest

from tap_zoom_sms.errors import DailyLimitError

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_PYTHON = ROOT / ".tools" / "airflow" / "bin" / "python"
RESET = "2030-01-02T00:00:00Z"
#: What ``meltano plugin list --format json`` prints for a project of three accounts (one inheriting
#: from another), an unrelated extractor and a loader.
PLUGINS = [
    {"type": "extractor", "name": "tap-zoom-sms", "inherit_from": None},
    {"type": "extractor", "name": "tap-zoom-sms--emea", "inherit_from": "tap-zoom-sms"},
    {"type": "extractor", "name": "tap-github", "inherit_from": None},
    {"type": "extractor", "name": "tap-zoom-sms--emea-archive", "inherit_from": "tap-zoom-sms--emea"},
    {"type": "extractor", "name": "tap-github--other", "inherit_from": "tap-github"},
    {"type": "loader", "name": "target-postgres", "inherit_from": None},
]


def fake_meltano(folder: Path, name: str, lines: list[str], code: int) -> Path:
    """Write a ``meltano`` that records how it was called and lists PLUGINS, or prints ``lines`` and exits
    with ``code``."""
    script = folder / name
    echo = "\n".join(f"printf '%s\\n' {json.dumps(line)}" for line in lines)
    listing = f"case \"$*\" in *'plugin list'*) echo '{json.dumps(PLUGINS)}'; exit 0;; esac"
    script.write_text(f'#!/bin/sh\necho "$PWD $*" >> "{folder}/calls"\n{listing}\n{echo}\nexit {code}\n')
    script.chmod(0o755)
    return script


def hanging_meltano(folder: Path) -> Path:
    """Write a ``meltano`` that writes its process id next to itself (``hangs.pid``), then runs for ten minutes."""
    script = folder / "hangs"
    script.write_text(f'#!/bin/sh\necho $$ > "{script}.pid"\nexec sleep 600\n')
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, t.Any]:
    assert AIRFLOW_PYTHON.exists(), "scripts/test installs Airflow into .tools/airflow"
    work = tmp_path_factory.mktemp("airflow")
    project = work / "project"
    project.mkdir()
    capped = f"tap-zoom-sms: error: {DailyLimitError('Heavy', RESET)}"
    capped_no_reset = f"tap-zoom-sms: error: {DailyLimitError('Heavy', None)}"
    fakes = [
        fake_meltano(work, "succeeds", ["extracted 10 records"], 0),
        fake_meltano(work, "capped", ["some output", capped, "Run invocation could not be completed"], 1),
        fake_meltano(work, "capped_no_reset", [capped_no_reset], 1),
        fake_meltano(work, "breaks", ["tap-zoom-sms: error: HTTP 500 from GET /v2/phone/sms/sessions"], 1),
        hanging_meltano(work),
    ]
    env = {**os.environ, "AIRFLOW_HOME": str(work / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("MELTANO_BIN", None)
    result = subprocess.run(  # noqa: S603
        [
            str(AIRFLOW_PYTHON),
            str(ROOT / "tests" / "airflow_dag_check.py"),
            str(ROOT / "orchestrate" / "airflow" / "dags"),
            str(project),
            *map(str, fakes),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    facts["calls"] = (work / "calls").read_text().splitlines()
    facts["project"] = str(project)
    return facts


def test_dagbag_loads_the_dag_with_its_schedule_and_tasks(airflow: dict[str, t.Any]) -> None:
    assert airflow["import_errors"] == {}
    assert airflow["dag_ids"] == ["zoom_sms_to_postgres"]
    assert airflow["schedule"] == "0 3 * * *"
    assert airflow["catchup"] is False
    assert airflow["max_active_runs"] == 1
    assert set(airflow["tasks"]) == {"zoom_accounts", "meltano_run"}
    for task in airflow["tasks"].values():
        assert task["retries"] == 3
        assert task["retry_delay_s"] == 600


def test_the_pipeline_task_is_mapped_over_the_accounts_one_instance_each(airflow: dict[str, t.Any]) -> None:
    accounts, run = airflow["tasks"]["zoom_accounts"], airflow["tasks"]["meltano_run"]
    assert accounts["mapped"] is False
    assert run["mapped"] is True
    assert run["upstream"] == ["zoom_accounts"]
    assert run["mapped_over"] == {"extractor": "zoom_accounts"}
    assert run["map_index_template"] == "{{ task.op_kwargs['extractor'] }}"  # the UI names each by its account
    # no downstream task joins them: a failed or rescheduled account holds up no other
    assert run["downstream"] == []


def test_the_accounts_are_tap_zoom_sms_and_the_extractors_inheriting_from_it(airflow: dict[str, t.Any]) -> None:
    assert airflow["accounts"] == ["tap-zoom-sms", "tap-zoom-sms--emea", "tap-zoom-sms--emea-archive"]
    assert f"{airflow['project']} --log-level=warning plugin list --format json" in airflow["calls"]


def test_the_task_runs_the_accounts_pipeline_in_the_project(airflow: dict[str, t.Any]) -> None:
    assert airflow["outcomes"]["succeeds"] == {"succeeded": True}
    assert f"{airflow['project']} run --no-install tap-zoom-sms--emea target-postgres" in airflow["calls"]


def test_a_daily_cap_reschedules_after_the_reset_the_tap_reports(airflow: dict[str, t.Any]) -> None:
    rescheduled = dt.datetime.fromisoformat(airflow["outcomes"]["capped"]["rescheduled"])
    assert rescheduled == dt.datetime(2030, 1, 2, 0, 5, tzinfo=dt.timezone.utc)


def test_a_daily_cap_without_a_reset_time_waits_for_the_next_utc_midnight(airflow: dict[str, t.Any]) -> None:
    rescheduled = dt.datetime.fromisoformat(airflow["outcomes"]["capped_no_reset"]["rescheduled"])
    now = dt.datetime.now(dt.timezone.utc)
    assert (rescheduled.hour, rescheduled.minute) == (0, 5)
    assert now < rescheduled <= now + dt.timedelta(days=1, minutes=5)


def test_other_failures_use_the_ordinary_retries(airflow: dict[str, t.Any]) -> None:
    broken = airflow["outcomes"]["breaks"]
    assert broken["failed"] == "RuntimeError"
    assert "exit code 1" in broken["message"]


def test_a_task_stopped_by_its_timeout_stops_its_pipeline(airflow: dict[str, t.Any]) -> None:
    """Stopped as execution_timeout does (SIGALRM, raising in the task), the task takes meltano down with it.

    Left running, the pipeline would go on beside the retry, two runs on one STATE.
    """
    assert airflow["outcomes"]["hangs"]["failed"] == "TimeoutError"
    pid = int(Path(airflow["project"]).parent.joinpath("hangs.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
