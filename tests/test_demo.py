"""scripts/demo as a new user runs it, in a temporary copy of the project.

The demo installs only the three plugins it runs, builds the dbt models in the DuckDB file it
loaded (and prints a mart that matches the loaded tables), paces the tap as the emulator limits, and leaves
no STATE: a later ``meltano run tap-zoom-sms target-duckdb`` against another account loads that
account whole, from start_date, into the default output/zoom.duckdb, where ``zoom_sms.<table>``
names one table (a file named zoom_sms.duckdb made it ambiguous).
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t

import pytest

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tap_zoom_sms.emulator.__main__ import parse_args, tap_limits
from tests.marts import first_responses
from tests.projects import ROOT, copy_project, duckdb_counts, meltano, run_in, tap_env, truth_counts

if t.TYPE_CHECKING:
    from pathlib import Path

DEMO_SESSIONS = 12


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the project after scripts/demo ran in it, and what the demo printed."""
    project = copy_project(tmp_path_factory.mktemp("demo") / "project")
    # Meltano and uv as scripts/test installed them; .venv and the plugins are the copy's own
    (project / ".tools").symlink_to(ROOT / ".tools")
    printed = run_in(project, project / "scripts" / "demo", env={"DEMO_SESSIONS": str(DEMO_SESSIONS)}).stdout
    return project, printed


def test_demo_prints_what_it_loaded(demo: tuple[Path, str]) -> None:
    _, printed = demo
    assert re.search(rf"^  sms_sessions +{DEMO_SESSIONS}$", printed, re.MULTILINE), printed


def test_demo_installs_only_the_plugins_it_runs(demo: tuple[Path, str]) -> None:
    project, _ = demo
    installed = {
        kind: sorted(p.name for p in (project / ".meltano" / kind).iterdir())
        for kind in ("extractors", "loaders", "utilities")
    }
    assert installed == {"extractors": ["tap-zoom-sms"], "loaders": ["target-duckdb"], "utilities": ["dbt-duckdb"]}


def duckdb_rows(project: Path, query: str) -> list[list[t.Any]]:
    """The rows of ``query`` on the demo's DuckDB file, read with the target's duckdb (as text)."""
    python = project / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    script = (
        "import duckdb, json, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps(c.execute(sys.argv[2]).fetchall(), default=str))\n"
    )
    database = project / "output" / "demo.duckdb"
    command = [str(python), "-c", script, str(database), query]
    result = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return list(json.loads(result.stdout))


def test_demo_builds_the_models_and_prints_a_mart_of_the_loaded_data(demo: tuple[Path, str]) -> None:
    project, printed = demo
    summary = re.search(r"^    dbt build: PASS=(\d+) WARN=(\d+) ERROR=0 SKIP=0 .*TOTAL=(\d+)$", printed, re.MULTILINE)
    assert summary, printed
    passed, warned, total = map(int, summary.groups())
    assert passed + warned == total > 30
    # the mart, grouped again: the same counts as the loaded tables, by plain SQL
    mart = duckdb_rows(
        project,
        "select day, session_type, direction, sum(messages) from zoom_sms_marts.messages_per_day group by all",
    )
    raw = duckdb_rows(
        project,
        "select cast(m.date_time as date), s.session_type, m.direction, count(*)"
        " from zoom_sms.sms_messages m join zoom_sms.sms_sessions s using (session_id) group by all",
    )
    assert sorted(map(tuple, mart)) == sorted(map(tuple, raw))
    assert sum(row[3] for row in raw) == duckdb_rows(project, "select count(*) from zoom_sms.sms_messages")[0][0]
    # and what the demo printed of it is its latest rows
    shown = re.findall(r"^  (\d{4}-\d\d-\d\d) +(\S+) +.+? +(In|Out) +(\d+)$", printed, re.MULTILINE)
    latest = duckdb_rows(
        project,
        "select day, session_type, direction, messages from zoom_sms_marts.messages_per_day"
        " order by day desc, session_type, owner_display_name, direction limit 12",
    )
    assert [(d, s, direction, int(n)) for d, s, direction, n in shown] == [tuple(row) for row in latest]


def test_demo_paces_the_tap_as_the_emulator_limits(demo: tuple[Path, str]) -> None:
    project, _ = demo
    config = json.loads((project / "output" / "emulator-tap-config.json").read_text())
    # the demo starts the emulator with Business-plan limits: 20 Medium, 10 Heavy requests/s
    assert (config["medium_requests_per_second"], config["heavy_requests_per_second"]) == (20, 10)


def test_a_run_after_the_demo_starts_from_start_date(demo: tuple[Path, str]) -> None:
    project, _ = demo
    assert meltano(project, "state", "list").stdout.strip() == ""
    # another account, as when the project is pointed at a real one after the demo
    with Emulator(DatasetSpec(seed=23, sessions=15, engagements=6)) as emulator:
        meltano(project, "run", "tap-zoom-sms", "target-duckdb", env=tap_env(emulator))
        expected = truth_counts(emulator)
    python = project / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    loaded = duckdb_counts(python, project / "output" / "zoom.duckdb")
    assert loaded == {table: (n, n) for table, n in expected.items()}
    # and that run kept its bookmark under the id the demo stays away from
    assert meltano(project, "state", "list").stdout.split() == ["dev:tap-zoom-sms-to-target-duckdb"]


@pytest.mark.parametrize(
    ("argv", "limits"),
    [
        (["--medium-qps", "20", "--heavy-qps", "10"], (20, 10)),
        (["--medium-qps", "8.5", "--heavy-qps", "0.5"], (8, 1)),  # whole numbers, never 0 (pacing off)
        ([], (0, 0)),  # no limit: no pacing
    ],
)
def test_emulator_tap_config_carries_its_limits(argv: list[str], limits: tuple[int, int]) -> None:
    got = tap_limits(parse_args(argv))
    assert (got["medium_requests_per_second"], got["heavy_requests_per_second"]) == limits


def test_demo_first_response_times_in_duckdb(demo: tuple[Path, str]) -> None:
    """The window logic of the mart on DuckDB, against the loaded messages (on PostgreSQL: test_dbt)."""
    project, _ = demo
    columns = ("session_id", "message_id", "date_time", "direction")
    messages = duckdb_rows(project, f"select {', '.join(columns)} from zoom_sms.sms_messages")  # noqa: S608
    expected = first_responses(dict(zip(columns, row, strict=True)) for row in messages)
    mart = duckdb_rows(project, "select message_id, response_seconds from zoom_sms_marts.first_response_times")
    assert dict(map(tuple, mart)) == expected
    assert None in expected.values()
