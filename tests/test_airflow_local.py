"""``scripts/airflow-local``: the DAG run by Airflow against the emulator into a throwaway PostgreSQL, in one command.

It runs in a copy of the project whose plugins are this project's installed ones (the DAG's runs
never install), whose emulator environment names a free port, with the PostgreSQL on another free
port. What it prints is checked against what it did: the DagRun's states from Airflow's metadata,
the rows PostgreSQL held against the records the emulator held; and that it cleaned up after itself.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.projects import MELTANO, ROOT, TABLES, clean_env, copy_project, link_plugins, require

AIRFLOW = ROOT / ".tools" / "airflow" / "bin" / "airflow"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The copy of the project after ``scripts/airflow-local`` ran in it, and the run."""
    require(MELTANO)
    require(AIRFLOW)
    for plugin in ("extractors/tap-zoom-sms", "loaders/target-postgres"):
        require(ROOT / ".meltano" / plugin)
    project = copy_project(tmp_path_factory.mktemp("airflow-local") / "project")
    for name in (".tools", ".venv"):
        (project / name).symlink_to(ROOT / name)
    link_plugins(project)
    meltano_yml = project / "meltano.yml"
    meltano_yml.write_text(
        meltano_yml.read_text().replace("http://127.0.0.1:8765/", f"http://127.0.0.1:{free_port()}/")
    )
    result = subprocess.run(  # noqa: S603
        [project / "scripts" / "airflow-local"],
        cwd=project,
        env=clean_env(POSTGRES_PORT=str(free_port())),
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    return project, result


def test_it_runs_the_dag_and_every_task_succeeds(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = ran
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    states = dict(re.findall(r"^  (zoom_accounts|meltano_run\[[^\]]+\]) +(\w+)$", result.stdout, re.MULTILINE))
    assert states == {"zoom_accounts": "success", "meltano_run[tap-zoom-sms]": "success"}, result.stdout
    assert "DagRun ended" in result.stdout


def test_postgres_holds_every_record_of_the_emulator(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = ran
    counts = {
        table: (int(rows), int(held))
        for table, rows, held in re.findall(r"^  (\w+) +(\d+)  /  (\d+)$", result.stdout, re.MULTILINE)
    }
    assert set(counts) == set(TABLES), result.stdout
    assert all(rows == held > 0 for rows, held in counts.values()), counts
    assert counts["sms_sessions"] == (40, 40)


def test_the_task_ran_meltano_in_the_emulator_environment_with_its_own_state(
    ran: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    project, _ = ran
    logs = "".join(p.read_text(errors="replace") for p in (project / "output" / "airflow-local").rglob("*.log"))
    assert "Environment 'emulator' is active" in logs
    state = subprocess.run(  # noqa: S603
        [MELTANO, "state", "list"],
        cwd=project,
        env=clean_env(MELTANO_DATABASE_URI=f"sqlite:///{project}/output/airflow-local/meltano.db"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "emulator:tap-zoom-sms-to-target-postgres" in state.stdout.split()
    assert not (project / ".meltano" / "meltano.db").exists()  # the project's own STATE untouched


def test_it_stops_the_emulator_and_the_postgres_it_started(ran: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    project, _ = ran
    assert not (project / "output" / "emulator" / "pid").exists()
    assert not (project / "output" / "postgres" / "dir").exists()


def test_the_page_gives_this_command() -> None:
    page = (ROOT / "docs" / "airflow.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", page, re.MULTILINE | re.DOTALL)
    assert blocks[0] == "scripts/airflow-local\n"
