"""Airflow DAG: ``meltano run tap-zoom-sms target-postgres`` once a day.

Copy this file into Airflow's dags folder and set, in the environment of the
workers (or as Airflow Variables of the same names):

- ``MELTANO_PROJECT_ROOT``: the Meltano project holding tap-zoom-sms and
  target-postgres (this repository's root works);
- ``MELTANO_BIN``: the ``meltano`` executable, if it is not on the PATH.

Retries: a failure retries three times, 10, 20 then 40 minutes apart. A run that
stops at Zoom's daily request cap is not retried that way (the cap lasts until
its reset, and each retry would spend the next day's budget failing): the task is
rescheduled for just after the reset the tap reports (next midnight UTC if it
reports none). The STATE Meltano saved lets the retry resume where the run stopped.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess

from airflow.sdk import DAG, Variable, task
from airflow.sdk.exceptions import AirflowRescheduleException

DAG_ID = "zoom_sms_to_postgres"
COMMAND = ("run", "tap-zoom-sms", "target-postgres")
#: How long after Zoom's reset to try again (clocks differ; the reset is not instant).
RESET_MARGIN = dt.timedelta(minutes=5)
#: The tap's one-line error at the daily cap, e.g. "... daily limit for Heavy requests was
#: reached; it resets at 2026-11-24T00:00:00Z. ..."
DAILY_LIMIT = re.compile(r"daily limit for \w+ requests was reached(?:; it resets at (?P<reset>[^\s.]+))?")


def daily_limit_retry_at(output: str, now: dt.datetime) -> dt.datetime | None:
    """Return when to run again if ``output`` shows the daily cap, else None."""
    found = None
    for found in DAILY_LIMIT.finditer(output):  # noqa: B007 (the last one counts)
        pass
    if found is None:
        return None
    reset = None
    if found["reset"]:
        try:
            reset = dt.datetime.fromisoformat(found["reset"].replace("Z", "+00:00"))
        except ValueError:
            reset = None
    if reset is None or reset.tzinfo is None:
        reset = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(reset, now) + RESET_MARGIN


def setting(name: str, default: str | None = None) -> str | None:
    """Read a setting from the environment, else from an Airflow Variable."""
    return os.environ.get(name) or Variable.get(name, default=default)


def run_meltano(project_root: str, meltano: str) -> None:
    """Run the pipeline, echoing its output to the task log; reschedule at the daily cap."""
    process = subprocess.Popen(  # noqa: S603 (a fixed command)
        [meltano, *COMMAND],
        cwd=project_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert process.stdout is not None  # noqa: S101
    for line in process.stdout:
        print(line, end="")  # noqa: T201 (the task log)
        lines.append(line)
    if process.wait() == 0:
        return
    now = dt.datetime.now(dt.timezone.utc)
    retry_at = daily_limit_retry_at("".join(lines[-200:]), now)
    if retry_at is not None:
        print(f"Zoom's daily request cap was reached: rescheduling for {retry_at:%Y-%m-%dT%H:%M:%SZ}")  # noqa: T201
        raise AirflowRescheduleException(retry_at)
    msg = f"meltano {' '.join(COMMAND)} failed with exit code {process.returncode}"
    raise RuntimeError(msg)


with DAG(
    dag_id=DAG_ID,
    description="Zoom Phone SMS and Contact Center SMS into PostgreSQL, daily",
    schedule="0 3 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,  # runs share one STATE: never two at once
    default_args={
        "retries": 3,
        "retry_delay": dt.timedelta(minutes=10),
        "retry_exponential_backoff": 2.0,  # 10, 20, 40 minutes
        "execution_timeout": dt.timedelta(hours=6),
    },
    tags=["meltano", "zoom", "sms"],
):

    @task(task_id="meltano_run_tap_zoom_sms_target_postgres")
    def meltano_run() -> None:
        """Run the pipeline from the Meltano project the settings name."""
        project_root = setting("MELTANO_PROJECT_ROOT")
        if not project_root:
            msg = "set MELTANO_PROJECT_ROOT (environment or Airflow Variable) to the Meltano project"
            raise RuntimeError(msg)
        run_meltano(project_root, setting("MELTANO_BIN", "meltano") or "meltano")

    meltano_run()
