"""Run the DAG with Airflow itself (``dag.test()``) and print its task instances' states as JSON.

Run by tests/test_airflow_run.py with the Python of the Airflow environment
(.tools/airflow), in a throwaway AIRFLOW_HOME whose sqlite metadata database is
migrated: ``python airflow_dag_run.py DAGS_FOLDER``. The task settings
(MELTANO_PROJECT_ROOT, MELTANO_BIN) come from the environment.

``dag.test()`` returns when the DAG run ends. A task rescheduled at Zoom's daily
cap keeps the run going until the reset (tomorrow), and a failed task waits for
its retry; so the run is watched in the metadata database, and reported as soon
as nothing is left to run but something waits: up for reschedule or for retry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
import time
import typing as t

from airflow.dag_processing.dagbag import DagBag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
from sqlalchemy import select

DAG_ID = "zoom_sms_to_postgres"
#: States a task instance waits in for time to pass (tomorrow's reset, a retry's delay).
WAITING = {TaskInstanceState.UP_FOR_RESCHEDULE, TaskInstanceState.UP_FOR_RETRY}
#: States of a task instance that dag.test() is about to run or is running.
ACTIVE = {TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED, TaskInstanceState.RUNNING}
#: Generous for a loaded 2-core machine: each account's pipeline takes under a minute.
TIMEOUT_S = 1200


def task_instances(logical_date: dt.datetime) -> list[dict[str, t.Any]]:
    """The run's task instances as the metadata database holds them."""
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.logical_date == logical_date))
        if run is None:
            return []
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)
        ).all()
        return [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "rendered_map_index": ti.rendered_map_index,
                "state": ti.state,
                "try_number": ti.try_number,
            }
            for ti in rows
        ]


def settled(tis: list[dict[str, t.Any]]) -> bool:
    """Whether the run has done what it can before time passes: nothing to run, something waiting."""
    states = {ti["state"] for ti in tis}
    return not states & ACTIVE and bool(states & WAITING)


def report(logical_date: dt.datetime, *, ended: bool) -> None:
    """Print whether dag.test() returned and the run's task instances, and end the process."""
    print(json.dumps({"ended": ended, "task_instances": task_instances(logical_date)}), flush=True)  # noqa: T201
    os._exit(0)  # without waiting for dag.test(), which would wait for the reschedule or the retry


def watch(logical_date: dt.datetime) -> None:
    """Report the run as soon as it has settled (dag.test() runs in the main thread: it sets signal handlers)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(1)
        if settled(task_instances(logical_date)):
            report(logical_date, ended=False)
    report(logical_date, ended=False)


def main() -> None:
    (dags_folder,) = sys.argv[1:]
    bag = DagBag(dags_folder)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    threading.Thread(target=watch, args=(logical_date,), daemon=True).start()
    dag.test(logical_date=logical_date)
    report(logical_date, ended=True)


if __name__ == "__main__":
    main()
