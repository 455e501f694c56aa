"""Load the DAG with Airflow's own DagBag and run its tasks' code; print what was found as JSON.

Run by tests/test_airflow.py with the Python of the Airflow environment that
scripts/test installs (.tools/airflow): ``python airflow_dag_check.py DAGS_FOLDER
PROJECT_ROOT FAKE_MELTANO...``. Each fake ``meltano`` plays one outcome of the pipeline;
the first also lists the project's plugins, for the task that finds the accounts.
"""

from __future__ import annotations

import json
import os
import signal
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
        tasks={
            task.task_id: {
                "upstream": sorted(task.upstream_task_ids),
                "mapped": task.is_mapped,
                "mapped_over": mapped_over(task),
                "downstream": sorted(task.downstream_task_ids),
                "map_index_template": getattr(task, "map_index_template", None),
                "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "retry_exponential_backoff": task.retry_exponential_backoff,
            }
            for task in dag.tasks
        },
    )
    return facts, dag


def mapped_over(task: t.Any) -> dict[str, str]:
    """For a mapped task: each mapped argument and the task whose output it maps over."""
    if not task.is_mapped:
        return {}
    return {name: arg.operator.task_id for name, arg in task.op_kwargs_expand_input.value.items()}


def outcome(run: t.Callable[[], None]) -> dict[str, t.Any]:
    try:
        run()
    except AirflowRescheduleException as exc:
        return {"rescheduled": exc.reschedule_date.isoformat()}
    except Exception as exc:  # reported to the test
        return {"failed": type(exc).__name__, "message": str(exc)}
    return {"succeeded": True}


def timed_out(run: t.Callable[[], None], pid_file: Path) -> dict[str, t.Any]:
    """Run ``run`` and stop it as Airflow's execution_timeout does: SIGALRM, raising in the task.

    The alarm raises only once the pipeline has started (written ``pid_file``), whatever
    the machine's load; until then it waits another second.
    """

    def alarm(signum: int, frame: t.Any) -> None:
        if not pid_file.exists():
            signal.alarm(1)
            return
        msg = "execution_timeout"
        raise TimeoutError(msg)

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(1)
    try:
        return outcome(run)
    finally:
        signal.alarm(0)


def main() -> None:
    dags_folder, project_root, *fakes = sys.argv[1:]
    facts, dag = describe(dags_folder)
    if dag is not None:
        os.environ["MELTANO_PROJECT_ROOT"] = project_root
        os.environ["MELTANO_BIN"] = fakes[0]
        facts["accounts"] = dag.get_task("zoom_accounts").python_callable()
        run = dag.get_task("meltano_run").python_callable
        facts["outcomes"] = {}
        for fake in fakes:
            os.environ["MELTANO_BIN"] = fake
            if Path(fake).name == "hangs":
                facts["outcomes"]["hangs"] = timed_out(lambda: run("tap-zoom-sms--emea"), Path(f"{fake}.pid"))
            else:
                facts["outcomes"][Path(fake).name] = outcome(lambda: run("tap-zoom-sms--emea"))
    print(json.dumps(facts))  # noqa: T201


if __name__ == "__main__":
    main()
