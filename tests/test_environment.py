"""meltano.yml's ``emulator`` environment, run as docs/emulator.md says, in a copy of the project.

The page's commands run as written, one after another (``meltano`` as its alias line makes it):
``scripts/emulator start``, a full run, ``scripts/emulator add-messages 5``, an incremental run, the
STATE and the row counts, ``scripts/emulator stop``. Data moves for real: the emulator is the one
``scripts/emulator`` starts, on the port of the environment's URLs (here a free one, set in the
copy's meltano.yml), and the test reads what it holds and what it was asked through its admin API.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import typing as t
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tap_zoom_sms.emulator.__main__ import months_since
from tap_zoom_sms.emulator.data import Account, DatasetSpec
from tests.projects import MELTANO, ROOT, TABLES, clean_env, copy_project, duckdb_counts, meltano, require

DOC = ROOT / "docs" / "emulator.md"
STATE_ID = "emulator:tap-zoom-sms-to-target-duckdb"
RUN = "meltano --environment=emulator run tap-zoom-sms target-duckdb"
DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"


def doc_block(target: str = "target-duckdb") -> tuple[str, list[str]]:
    """The page's alias line and the commands after it, from its code block that runs into ``target``."""
    blocks = re.findall(r"^```bash\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    [block] = [b for b in blocks if "scripts/emulator start" in b and target in b]
    alias, *commands = block.splitlines()
    assert alias.startswith("alias meltano=")
    return alias, commands


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulated:
    """The admin API of the emulator that ``scripts/emulator`` started on ``port``."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/_admin"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.base}/{path}", timeout=60) as response:  # noqa: S310 (127.0.0.1)
            return t.cast("bytes", response.read())

    def requests(self) -> int:
        """API requests served since the last reset."""
        return int(json.loads(self._get("stats"))["total_requests"])

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base}/stats/reset", data=b"{}", method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310 (127.0.0.1)

    def config(self) -> dict[str, t.Any]:
        """The emulator's behaviour (its rate limits among it)."""
        return t.cast("dict[str, t.Any]", json.loads(self._get("config")))

    def truth(self) -> dict[str, int]:
        """How many records of each stream the account holds."""
        counts = Counter(json.loads(line)["stream"] for line in self._get("truth").splitlines())
        return {table: counts[table] for table in TABLES}


class Ran(t.NamedTuple):
    """What the page's commands did."""

    #: each command's output, in the page's order
    outputs: dict[str, str]
    #: per ``meltano run`` (first, second): the emulator's records, the requests it served, the rows loaded
    truth: list[dict[str, int]]
    requests: list[int]
    loaded: list[dict[str, tuple[int, int]]]
    #: the STATE after the first run
    first_state: dict[str, t.Any]
    #: the emulator's config while it ran
    config: dict[str, t.Any]
    #: whether the emulator still answered after ``scripts/emulator stop``
    answers_after_stop: bool


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A copy of the project whose emulator environment names a free port; its own tap-zoom-sms install."""
    require(MELTANO)
    require(DUCKDB_PYTHON)
    project = copy_project(tmp_path_factory.mktemp("environment") / "project")
    for name in (".tools", ".venv"):
        (project / name).symlink_to(ROOT / name)
    (project / ".meltano").mkdir()
    # target-duckdb's install does not depend on the project's path; tap-zoom-sms's (-e .) does
    (project / ".meltano" / "loaders").symlink_to(ROOT / ".meltano" / "loaders")
    port = free_port()
    meltano_yml = project / "meltano.yml"
    text = meltano_yml.read_text()
    assert text.count("http://127.0.0.1:8765/") == 2
    meltano_yml.write_text(text.replace("http://127.0.0.1:8765/", f"http://127.0.0.1:{port}/"))
    meltano(project, "--log-level=warning", "install", "tap-zoom-sms")
    return project, port


def run_line(project: Path, alias: str, line: str) -> str:
    """Run one of the page's lines with bash in ``project``, after its alias line; it must succeed."""
    result = bash(project, alias, line)
    assert result.returncode == 0, f"{line}\n{(result.stdout + result.stderr)[-4000:]}"
    return result.stdout + result.stderr


def bash(project: Path, alias: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash in ``project``, after the page's alias line, with no Meltano or target settings."""
    return subprocess.run(  # noqa: S603
        ["/bin/bash", "-euo", "pipefail", "-c", f"shopt -s expand_aliases\n{alias}\n{script}"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def answers(emulator: Emulated) -> bool:
    try:
        emulator.requests()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def ran(project: tuple[Path, int]) -> Ran:
    root, port = project
    alias, commands = doc_block()
    emulator = Emulated(port)
    outputs: dict[str, str] = {}
    truth, requests, loaded = [], [], []
    first_state: dict[str, t.Any] = {}
    config: dict[str, t.Any] = {}
    try:
        for line in commands:
            if line == RUN:
                emulator.reset()
            output = run_line(root, alias, line)
            outputs[line] = outputs.get(line, "") + output
            if line == "scripts/emulator start":
                config = emulator.config()
            if line == RUN:
                truth.append(emulator.truth())
                requests.append(emulator.requests())
                loaded.append(duckdb_counts(DUCKDB_PYTHON, root / "output" / "emulator.duckdb"))
                if not first_state:
                    state = meltano(root, "--environment=emulator", "state", "get", STATE_ID).stdout
                    first_state = json.loads(state)
    finally:
        subprocess.run([root / "scripts" / "emulator", "stop"], cwd=root, capture_output=True, check=False)  # noqa: S603
    return Ran(outputs, truth, requests, loaded, first_state, config, answers(emulator))


def test_the_page_runs_the_environment_twice_and_stops_the_emulator() -> None:
    _, commands = doc_block()
    assert commands[0] == "scripts/emulator start"
    assert commands.count(RUN) == 2
    assert commands[-1] == "scripts/emulator stop"


def test_the_first_run_loads_everything_the_emulator_holds(ran: Ran) -> None:
    first = ran.loaded[0]
    assert {table: rows for table, (rows, _) in first.items()} == ran.truth[0]
    assert all(rows == keys for rows, keys in first.values())
    assert ran.truth[0]["sms_messages"] > 1000  # the default account, whole


def test_the_second_run_starts_from_the_state_and_loads_what_was_added(ran: Ran) -> None:
    added = {"sms_sessions": 1, "sms_messages": 5}
    first, second = ran.truth
    assert {table: second[table] - first[table] for table in added} == added
    assert {table: rows for table, (rows, _) in ran.loaded[1].items()} == second
    assert all(rows == keys for rows, keys in ran.loaded[1].values())
    bookmark = ran.first_state["singer_state"]["bookmarks"]["sms_sessions"]["replication_key_value"]
    output = ran.outputs[RUN]
    assert f"Starting incremental sync of 'sms_sessions' with bookmark value: {bookmark}" in output
    assert ran.requests[1] * 20 < ran.requests[0]


def test_the_state_is_the_environments_own(ran: Ran) -> None:
    printed = ran.outputs["meltano --environment=emulator state get " + STATE_ID]
    state, _ = json.JSONDecoder().raw_decode(printed, printed.index("{"))
    assert state["singer_state"]["bookmarks"]["sms_sessions"]["replication_key_value"]


def test_the_page_prints_the_row_counts(ran: Ran) -> None:
    [printed] = [output for line, output in ran.outputs.items() if "duckdb.connect('output/emulator.duckdb'" in line]
    values = [ran.truth[1][table] for table in TABLES]
    assert re.search(r"│\s+" + r"\s+│\s+".join(map(str, values)) + r"\s+│", printed), printed


def test_the_emulator_stops(ran: Ran) -> None:
    assert "is stopped" in ran.outputs["scripts/emulator stop"]
    assert not ran.answers_after_stop


def test_scripts_emulator_takes_its_settings_from_the_environment(ran: Ran) -> None:
    environment = next(
        e for e in yaml.safe_load((ROOT / "meltano.yml").read_text())["environments"] if e["name"] == "emulator"
    )
    [tap] = [p for p in environment["config"]["plugins"]["extractors"] if p["name"] == "tap-zoom-sms"]
    settings = tap["config"]
    assert ran.config["medium_qps"] == settings["medium_requests_per_second"]
    assert ran.config["heavy_qps"] == settings["heavy_requests_per_second"]
    assert {key: ran.config[key] for key in ("account_id", "client_id", "client_secret")} == {
        key: settings[key] for key in ("account_id", "client_id", "client_secret")
    }
    assert f"a history that begins after {settings['start_date']}" in ran.outputs["scripts/emulator start"]


@pytest.mark.parametrize(
    "today", ["2026-12-05T22:00:00", "2027-03-01T00:00:00", "2031-07-31T23:59:59", "2026-01-01T00:00:00"]
)
def test_the_history_begins_after_the_start_date_whatever_today_is(today: str) -> None:
    start_date = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
    now = dt.datetime.fromisoformat(today).replace(tzinfo=dt.timezone.utc)
    months = months_since(start_date, now)
    account = Account(DatasetSpec(sessions=1, engagements=1, months=months, anchor=now))
    assert start_date <= account.start < start_date + dt.timedelta(days=31)


RUN_PG = "meltano --environment=emulator run tap-zoom-sms target-postgres"


class IntoPostgres(t.NamedTuple):
    """What the page's PostgreSQL block did, and a run without the target's credentials."""

    #: the run without TARGET_POSTGRES_USER and _PASSWORD
    unset: subprocess.CompletedProcess[str]
    #: the block's output up to the run, the emulator's records, the rows of each table (rows, keys)
    output: str
    truth: dict[str, int]
    loaded: dict[str, tuple[int, int]]


def postgres_counts(project: Path, port: int) -> dict[str, tuple[int, int]]:
    """Rows and distinct keys of each table of schema zoom_sms in the PostgreSQL on ``port``, by psql."""
    psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    counts = {}
    for table, key in TABLES.items():
        query = f"select count(*), count(distinct ({key})) from zoom_sms.{table}"  # noqa: S608
        command = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "zoom", "-Atc", query]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
        rows, keys = out.strip().split("|")
        counts[table] = (int(rows), int(keys))
    return counts


@pytest.fixture(scope="module")
def into_postgres(project: tuple[Path, int], ran: Ran) -> IntoPostgres:
    """The PostgreSQL block, after the DuckDB one (``ran``: the emulator on the same port was stopped)."""
    assert ran.outputs
    root, port = project
    alias, commands = doc_block("target-postgres")
    stops = [line for line in commands if line.endswith(" stop")]
    setup = [line for line in commands if line not in stops]
    [start_postgres] = [line for line in setup if "scripts/postgres start" in line]
    pg_port = free_port()
    emulator = Emulated(port)
    try:
        run_line(root, alias, setup[0])
        unset = bash(root, alias, RUN_PG)
        # the rest in one shell: `eval` sets the variables for the run; the PostgreSQL on a free port
        script = "\n".join(setup[1:]).replace(start_postgres, start_postgres.replace("start", f"start {pg_port}"))
        output = run_line(root, alias, script)
        return IntoPostgres(unset, output, emulator.truth(), postgres_counts(root, pg_port))
    finally:
        for line in stops:
            bash(root, alias, line)


def test_the_page_runs_into_a_throwaway_postgres_and_stops_both() -> None:
    _, commands = doc_block("target-postgres")
    assert commands[0].startswith("scripts/emulator start")
    assert 'eval "$(scripts/postgres start)"' in commands
    assert RUN_PG in commands
    assert commands[-2:] == ["scripts/postgres stop", "scripts/emulator stop"]


def test_the_throwaway_postgres_gets_every_record(into_postgres: IntoPostgres) -> None:
    loaded = into_postgres.loaded
    assert {table: rows for table, (rows, _) in loaded.items()} == into_postgres.truth
    assert all(rows == keys for rows, keys in loaded.values())
    assert into_postgres.truth["sms_sessions"] == 40


#: Where Meltano's code and the Python it runs under live: the frames its own tracebacks may show.
MELTANOS_OWN = re.compile(r"/(site-packages/(meltano|click|anyio)|lib/python3\.\d+/asyncio)/")


def inside(line: str) -> str:
    """A line of a traceback's box without the box."""
    return line.strip().strip("│").strip()


def foreign_tracebacks(output: str) -> list[str]:
    """The tracebacks in ``output`` other than Meltano's own BrokenPipeError (meltano/meltano#7047).

    When a target stops while the tap's output fills the pipe to it, Meltano fails to write the next
    line and prints a BrokenPipeError traceback of its own frames, in place of "Loader failed".
    Whether it does depends on how much the tap wrote before the target stopped: a race outside the
    tap. Every other traceback is returned as its exception line and the frames not Meltano's.
    """
    lines = output.splitlines()
    foreign = []
    for start, line in enumerate(lines):
        if "Traceback (most recent call last)" not in line:
            continue
        end = next(i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("╰"))
        exception = next((text.strip() for text in lines[end + 1 :] if text.strip()), "")
        # a frame's first line: "│ /path/to/file.py:228 in name", whose path rich may wrap onto the next
        frames = [inside(lines[i]) + inside(lines[i + 1]) for i in range(start + 1, end) if re.match(r"│ /", lines[i])]
        strangers = [frame for frame in frames if not MELTANOS_OWN.search(frame)]
        if exception != "BrokenPipeError" or strangers:
            foreign.append("\n".join([exception, *strangers]))
    return foreign


def test_meltanos_own_broken_pipe_is_told_from_other_tracebacks() -> None:
    box = (
        "2026-12-06T04:06:53.730617Z [error    ] meltano\n"
        "╭───────────────────── Traceback (most recent call last) ──────────────────────╮\n"
        "│ {path}:333 in _write_line_writer                                     │\n"
        "│                                                                              │\n"
        "│ ❱ 333 │   │   │   await writer.wait_closed()                                 │\n"
        "╰──────────────────────────────────────────────────────────────────────────────╯\n"
        "{exception}\n"
    )
    meltano = "/p/.tools/meltano/lib/python3.11/site-packages/meltano/core/logging/utils.py"
    tap = "/p/.meltano/extractors/tap-zoom-sms/venv/lib/python3.11/site-packages/tap_zoom_sms/cli.py"
    assert foreign_tracebacks("target-postgres Config validation failed\n") == []
    assert foreign_tracebacks(box.format(path=meltano, exception="BrokenPipeError")) == []
    assert foreign_tracebacks(box.format(path=meltano, exception="KeyError: 'x'")) == ["KeyError: 'x'"]
    [found] = foreign_tracebacks(box.format(path=tap, exception="BrokenPipeError"))
    assert "tap_zoom_sms/cli.py" in found


def test_without_the_credentials_the_run_says_which_to_set(into_postgres: IntoPostgres) -> None:
    result = into_postgres.unset
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert foreign_tracebacks(output) == []
    shown = re.search(r"^```\n(target-postgres .*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert shown
    flat = " ".join(output.split())
    said = shown[1].splitlines()
    assert said[-1] == "meltano         Loader failed"
    if "Traceback" in output:  # Meltano's BrokenPipeError in place of its last line (see the page)
        said = said[:-1]
    assert said
    for line in said:
        assert " ".join(line.split()) in flat, line
