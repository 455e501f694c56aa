"""Airflow DAG: ``meltano run <account> target-postgres`` once a day, one mapped task per Zoom account.

Copy this file into Airflow's dags folder and set, in the environment of the
workers (or as Airflow Variables of the same names):

- ``MELTANO_PROJECT_ROOT``: the Meltano project holding tap-zoom-sms and
  target-postgres (this repository's root works), its plugins installed
  (``meltano install``) where the workers run;
- ``MELTANO_BIN``: the ``meltano`` executable, if it is not on the PATH.

Accounts: every extractor of the project that is tap-zoom-sms or inherits from
it (``inherit_from: tap-zoom-sms``) is one Zoom account. The first task reads them
from the project itself (``meltano plugin list``), and the pipeline task is mapped
over them (dynamic task mapping): one task instance per account, which the
executor runs side by side. The project is the one place an account is added, with
its own credentials, and the place Meltano already takes them from; an Airflow
Variable listing the accounts would be a second list to keep in step with it. A
project with one account (tap-zoom-sms alone) needs nothing more. Each account has
its own STATE, since Meltano's state id names the extractor
(``dev:tap-zoom-sms--emea-to-target-postgres``).

Mapped task instances do not depend on each other: an account that fails or
reaches its daily cap leaves the others running.

Retries: a failure retries three times, at least 10, 20 then 40 minutes apart
(Airflow's exponential backoff adds up to as much again). A task stopped by its
execution_timeout (or killed) stops its ``meltano run`` first. A run that
stops at Zoom's daily request cap is not retried that way (the cap lasts until
its reset, and each retry would spend the next day's budget failing): the task is
rescheduled for just after the reset the tap reports (next midnight UTC if it
reports none). The STATE Meltano saved lets the retry resume where the run stopped.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import subprocess

from airflow.sdk import DAG, Variable, task
from airflow.sdk.exceptions import AirflowRescheduleException

DAG_ID = "zoom_sms_to_postgres"
TAP = "tap-zoom-sms"
LOADER = "target-postgres"
#: How long a task that is stopped (its execution_timeout, or killed) gives ``meltano run`` to stop.
STOP_GRACE_SECONDS = 60
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


def meltano_project() -> tuple[str, str]:
    """Return the Meltano project's root and the ``meltano`` to run there, from the settings."""
    project_root = setting("MELTANO_PROJECT_ROOT")
    if not project_root:
        msg = "set MELTANO_PROJECT_ROOT (environment or Airflow Variable) to the Meltano project"
        raise RuntimeError(msg)
    return project_root, setting("MELTANO_BIN", "meltano") or "meltano"


def zoom_extractors(plugins: list[dict[str, str | None]]) -> list[str]:
    """Return the extractors among ``plugins`` that are tap-zoom-sms or inherit from it, at any depth."""
    parents = {p["name"]: p.get("inherit_from") for p in plugins if p.get("type") == "extractor"}

    def reads_zoom(name: str | None, seen: frozenset[str] = frozenset()) -> bool:
        if name is None or name in seen:
            return False
        return name == TAP or reads_zoom(parents.get(name), seen | {name})

    return [str(name) for name in parents if reads_zoom(name)]


def run_meltano(project_root: str, meltano: str, extractor: str) -> None:
    """Run one account's pipeline, echoing its output to the task log; reschedule at the daily cap.

    ``--no-install``: the accounts share tap-zoom-sms's installation, and runs side by
    side must not rebuild it at once; ``meltano install`` is a deployment step.
    """
    command = [meltano, "run", "--no-install", extractor, LOADER]
    process = subprocess.Popen(  # noqa: S603 (a fixed command)
        command,
        cwd=project_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=200)  # where the tap's last line is
    assert process.stdout is not None  # noqa: S101
    try:
        for line in process.stdout:
            print(line, end="")  # noqa: T201 (the task log)
            tail.append(line)
        code = process.wait()
    except BaseException:
        # the task is stopped (execution_timeout, or killed): stop the pipeline too, or the retry
        # would run beside it on the same STATE
        stop(process)
        raise
    if code == 0:
        return
    now = dt.datetime.now(dt.timezone.utc)
    retry_at = daily_limit_retry_at("".join(tail), now)
    if retry_at is not None:
        print(f"Zoom's daily request cap was reached: rescheduling for {retry_at:%Y-%m-%dT%H:%M:%SZ}")  # noqa: T201
        raise AirflowRescheduleException(retry_at)
    msg = f"meltano run {extractor} {LOADER} failed with exit code {code}"
    raise RuntimeError(msg)


def stop(process: subprocess.Popen[str]) -> None:
    """Ask ``meltano run`` to stop (SIGTERM), and kill it if it has not within STOP_GRACE_SECONDS."""
    process.terminate()
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


with DAG(
    dag_id=DAG_ID,
    description="Zoom Phone SMS and Contact Center SMS into PostgreSQL, daily, one task per Zoom account",
    schedule="0 3 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,  # a run's accounts each share their STATE with the next run: never two at once
    default_args={
        "retries": 3,
        "retry_delay": dt.timedelta(minutes=10),
        "retry_exponential_backoff": 2.0,  # at least 10, 20, 40 minutes (Airflow adds up to as much again)
        "execution_timeout": dt.timedelta(hours=6),
    },
    tags=["meltano", "zoom", "sms"],
):

    @task
    def zoom_accounts() -> list[str]:
        """List the project's Zoom accounts: its extractors that are or inherit from tap-zoom-sms."""
        project_root, meltano = meltano_project()
        listed = subprocess.run(  # noqa: S603 (a fixed command)
            [meltano, "--log-level=warning", "plugin", "list", "--format", "json"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            msg = f"meltano plugin list failed in {project_root}: {listed.stderr.strip()[-2000:]}"
            raise RuntimeError(msg)
        accounts = zoom_extractors(json.loads(listed.stdout))
        if not accounts:
            msg = f"the Meltano project in {project_root} has no extractor {TAP}"
            raise RuntimeError(msg)
        print(f"Zoom accounts: {', '.join(accounts)}")  # noqa: T201 (the task log)
        return accounts

    @task(map_index_template="{{ task.op_kwargs['extractor'] }}")
    def meltano_run(extractor: str) -> None:
        """Run one account's pipeline, ``meltano run <extractor> target-postgres``."""
        run_meltano(*meltano_project(), extractor)

    meltano_run.expand(extractor=zoom_accounts())
