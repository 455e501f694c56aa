"""Load the DAG with Airflow's own DagBag and run its task's code; print what was found as JSON.

Run by tests/test_airflow.py with the Python of the Airflow environment that
scripts/test installs (.tools/airflow): ``python airflow_dag_check.py DAGS_FOLDER
PROJECT_ROOT FAKE_MELTANO...``. Each fake ``meltano`` plays one outcome of the pipeline.
"""

from __future__ import annotations

import json
import os
import sys
import typing as t
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowRescheduleException

DAG_ID = "zoom_sms_to_postgres"


def describe(dags_folder: str) -> tuple[dict[str, t.Any], t.Any]:
    bag = DagBag(dags_folder)
    facts: dict[str, t.Any] = {"import_errors": dict(bag.import_errors), "dag_ids": sorted(bag.dags)}
    dag = bag.dags.get(DAG_ID)
    if dag is None:
        return facts, None
    facts.update(
        schedule=dag.timetable.expression,
        catchup=dag.catchup,
        max_active_runs=dag.max_active_runs,
        tasks=[
            {
                "task_id": task.task_id,
                "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "retry_exponential_backoff": task.retry_exponential_backoff,
            }
            for task in dag.tasks
        ],
    )
    return facts, dag


def outcome(run: t.Callable[[], None]) -> dict[str, t.Any]:
    try:
        run()
    except AirflowRescheduleException as exc:
        return {"rescheduled": exc.reschedule_date.isoformat()}
    except Exception as exc:  # reported to the test
        return {"failed": type(exc).__name__, "message": str(exc)}
    return {"succeeded": True}


def main() -> None:
    dags_folder, project_root, *fakes = sys.argv[1:]
    facts, dag = describe(dags_folder)
    if dag is not None:
        run = dag.tasks[0].python_callable
        os.environ["MELTANO_PROJECT_ROOT"] = project_root
        facts["outcomes"] = {}
        for fake in fakes:
            os.environ["MELTANO_BIN"] = fake
            facts["outcomes"][Path(fake).name] = outcome(run)
    print(json.dumps(facts))  # noqa: T201


if __name__ == "__main__":
    main()
