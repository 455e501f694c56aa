"""The Meltano commands of the README and of docs/, run as written, and the pages' shape and links.

They run with the Meltano that scripts/test installs, so a command this Meltano does not know fails
here; the settings they set are then read back. ``meltano run`` is a dry run there, except that every
``meltano run`` into target-duckdb runs for real against the emulator (its row counts checked), and the
emulator environment's runs are docs/emulator.md's, which tests/test_environment.py runs for real. The
recipe for another Meltano project runs in tests/test_install_elsewhere.py, the system database's
commands in tests/test_accounts.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t

import pytest
import yaml

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.projects import (
    MELTANO,
    ROOT,
    clean_env,
    copy_project,
    duckdb_counts,
    meltano,
    project_with_plugins,
    require,
    tap_env,
    truth_counts,
)
from tests.readme import PAGES, README, bash_blocks, inline_meltano_commands, meltano_lines, run_as_written
from tests.test_environment import doc_block

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TOKEN = "token-of-the-readme-test"  # what "$TOKEN_FROM_YOUR_OAUTH_FLOW" holds here
DOCS = ROOT / "docs"
#: Pages whose commands other tests run for real, as written: test_environment, test_install_elsewhere.
RUN_ELSEWHERE = {DOCS / "emulator.md", DOCS / "install.md"}
#: The Meltano commands run here (dry runs for ``run``); ``install``, ``invoke``, ``state``, ... are not.
RUN_HERE = ("meltano config ", "meltano run ", "meltano add ")
DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
#: The README's sections, in the order a user needs them.
SECTIONS = [
    "What it extracts",
    "Quick start",
    "Install into your own Meltano project",
    "The Zoom app and its scopes",
    "Settings",
    "Running it",
    "Errors and what to do about them",
    "More documentation",
]


def page_commands(page: Path) -> list[str]:
    """A page's Meltano commands: its code blocks' (but a block adding the tap from a file), then its prose's."""
    lines = [line for block in bash_blocks(page) if "--from-ref" not in block for line in meltano_lines(block)]
    return lines + inline_meltano_commands(page)


def all_commands() -> list[str]:
    """Every Meltano command of the README and docs/, in the pages' order."""
    return [line for page in PAGES for line in page_commands(page)]


def commands_here() -> list[str]:
    """The commands this module runs in its copy of the project, in the pages' order.

    Not those of pages other tests run, not the emulator environment's (docs/emulator.md's, run for real),
    not those with a placeholder (``<account>``, or ``...`` for the plugins of a run).
    """
    return [
        line
        for page in PAGES
        if page not in RUN_ELSEWHERE
        for line in page_commands(page)
        if line.startswith(RUN_HERE) and "--environment=emulator" not in line and not placeholder(line)
    ]


def placeholder(line: str) -> bool:
    """Whether ``line`` names a command rather than gives one: ``<account>``, ``meltano run ... target``."""
    return "<" in line or (line.startswith("meltano run ") and "..." in line)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("readme") / "project")
    (project / ".tools").symlink_to(ROOT / ".tools")
    return project


@pytest.fixture(scope="module")
def ran(project: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Every command, in the README's order.

    A dry run (``meltano run``) that already ran since the last command that changed the project
    (``config``, ``add``) is not run again: it would meet the same project (each costs a Meltano start).
    """
    ran = []
    dry_runs: dict[str, subprocess.CompletedProcess[str]] = {}
    for line in commands_here():
        result = dry_runs.get(line) or run_as_written(project, line, {"TOKEN_FROM_YOUR_OAUTH_FLOW": TOKEN})
        ran.append((line, result))
        if line.startswith("meltano run "):
            dry_runs[line] = result
        else:
            dry_runs.clear()
    return ran


def test_the_readme_has_its_meltano_commands() -> None:
    commands = [line for block in bash_blocks() for line in meltano_lines(block)] + inline_meltano_commands()
    assert "meltano run tap-zoom-sms target-duckdb" in commands
    commands = commands_here()
    assert any(c.startswith("meltano config set tap-zoom-sms account_id") for c in commands)
    assert any(c.startswith("meltano run tap-zoom-sms target-postgres") for c in commands)
    assert any("stream_maps" in c for c in commands)


def test_every_readme_meltano_command_runs(ran: list[tuple[str, subprocess.CompletedProcess[str]]]) -> None:
    failed = [f"{line}\n{(r.stdout + r.stderr)[-600:]}" for line, r in ran if r.returncode != 0]
    assert not failed, "\n\n".join(failed)


def test_the_settings_are_those_the_readme_sets(ran: list[tuple[str, t.Any]], project: Path) -> None:
    assert ran
    tap = json.loads(meltano(project, "config", "--unsafe", "print", "tap-zoom-sms").stdout)
    recipe = json.loads((ROOT / "examples" / "pii-stream-maps.json").read_text())["stream_maps"]
    expected = {
        "account_id": "...",
        "client_id": "...",
        "client_secret": "...",
        "start_date": "2024-01-01T00:00:00Z",
        "access_token": TOKEN,
        "user_ids": ["me"],
        "stream_maps": recipe,
    }
    assert {name: tap.get(name) for name in expected} == expected
    # sensitive settings went to .env, not to meltano.yml
    assert "TAP_ZOOM_SMS_CLIENT_SECRET='...'" in (project / ".env").read_text()
    declared = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"][0]["config"]
    assert "client_secret" not in declared
    assert "access_token" not in declared
    snowflake = json.loads(meltano(project, "config", "--unsafe", "print", "target-snowflake").stdout)
    assert snowflake["account"] == "..."


def test_the_readme_adds_a_zoom_account_inheriting_from_the_tap(ran: list[tuple[str, t.Any]], project: Path) -> None:
    assert ran
    extractors = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"]
    account = next(plugin for plugin in extractors if plugin["name"] == "tap-zoom-sms--emea")
    assert account["inherit_from"] == "tap-zoom-sms"
    assert account["load_schema"] == "zoom_sms_emea"
    config = json.loads(meltano(project, "config", "--unsafe", "print", "tap-zoom-sms--emea").stdout)
    assert config["start_date"] == "2024-01-01T00:00:00Z"  # inherited
    assert "TAP_ZOOM_SMS__EMEA_CLIENT_SECRET='...'" in (project / ".env").read_text()
    assert "client_secret" not in account.get("config", {})


def test_the_readme_way_to_call_meltano(project: Path) -> None:
    pinned = re.search(r'"meltano(?:\[postgres\])?==([\d.]+)"', (ROOT / "scripts" / "lib" / "tools.sh").read_text())
    assert pinned
    assert f"Meltano {pinned[1]} in `.tools/meltano`" in README.read_text()
    alias = next(line for block in bash_blocks() for line in block.splitlines() if line.startswith("alias meltano="))
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "-c", f"shopt -s expand_aliases\n{alias}\nmeltano --version"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert pinned[1] in result.stdout


def test_the_readme_puts_duckdb_before_postgres() -> None:
    commands = [line for block in bash_blocks() for line in meltano_lines(block)]
    first_run = next(line for line in commands if line.startswith("meltano run "))
    assert first_run == "meltano run tap-zoom-sms target-duckdb"
    [postgres] = [block for block in bash_blocks() if "meltano run tap-zoom-sms target-postgres\n" in block]
    exported = set(re.findall(r"\b(TARGET_POSTGRES_[A-Z]+)=", postgres))
    assert exported == {f"TARGET_POSTGRES_{name}" for name in ("HOST", "PORT", "DATABASE", "USER", "PASSWORD")}


def headings(page: Path) -> list[tuple[int, str]]:
    """The Markdown headings of ``page`` outside code blocks: (level, text)."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [(len(marks), text.strip()) for marks, text in re.findall(r"^(#{1,6}) (.+)$", prose, re.MULTILINE)]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens and underscores dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_the_readme_has_its_sections_in_order_and_is_short() -> None:
    assert [text for level, text in headings(README) if level == 2] == SECTIONS
    lines = README.read_text().splitlines()
    assert len(lines) <= 300
    contents = next(line for line in lines if line.startswith("**Contents:**"))
    assert lines.index(contents) < 10


LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    """The targets of ``page``'s Markdown links outside code (blocks and spans), but web addresses."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return [target for target in LINK.findall(prose) if not re.match(r"[a-z]+:", target)]


def test_every_link_to_a_file_or_an_anchor_resolves() -> None:
    broken = []
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        for target in links(page):
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and fragment not in {anchor(text) for _, text in headings(linked)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def prose_lines(page: Path) -> list[str]:
    """The lines of ``page`` outside code blocks and tables."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [line for line in prose.splitlines() if not line.startswith("|")]


def test_no_prose_line_is_longer_than_200_characters() -> None:
    long = [f"{page.name}: {line[:60]}..." for page in PAGES for line in prose_lines(page) if len(line) > 200]
    assert not long, "\n".join(long)


def test_long_pages_open_with_their_contents() -> None:
    long = [page for page in PAGES if len(page.read_text().splitlines()) > 100]
    assert long
    missing = [page.name for page in long if "**Contents:**" not in "\n".join(page.read_text().splitlines()[:12])]
    assert not missing


HISTORY = re.compile(r"\b(used to|before these changes|the old default|the former default|before it built)\b")


def test_the_pages_tell_no_history() -> None:
    told = [f"{page.name}: {found}" for page in PAGES for found in HISTORY.findall(page.read_text().lower())]
    assert not told


def test_the_readme_shows_the_emulator_block_that_docs_emulator_runs() -> None:
    alias, commands = doc_block()
    [shown] = [block for block in bash_blocks() if "scripts/emulator start" in block]
    assert shown.splitlines() == [alias, *commands]


def test_every_emulator_run_of_the_pages_is_one_test_environment_runs() -> None:
    run_for_real = set(doc_block()[1]) | set(doc_block("target-postgres")[1])
    emulator_runs = {line for line in all_commands() if "--environment=emulator run " in line}
    assert emulator_runs
    assert emulator_runs <= run_for_real


def duckdb_runs() -> list[str]:
    """The pages' ``meltano run`` commands into target-duckdb against Zoom (the project's own config), once each."""
    runs = [line for line in all_commands() if line.startswith("meltano run ") and " target-duckdb" in line]
    return list(dict.fromkeys(line for line in runs if "--environment" not in line and "--no-state-update" not in line))


def test_the_pages_run_into_duckdb() -> None:
    assert set(duckdb_runs()) == {
        "meltano run tap-zoom-sms target-duckdb",
        "meltano run tap-zoom-sms target-duckdb dbt-duckdb:build",
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(DatasetSpec(seed=21, sessions=30, engagements=10)) as em:
        yield em


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this project with its installed plugins (dbt writes its target there, not here)."""
    return project_with_plugins(tmp_path_factory.mktemp("readme-installed") / "project")


@pytest.mark.parametrize("line", duckdb_runs())
def test_each_duckdb_run_loads_the_emulators_account(
    line: str, emulator: Emulator, tmp_path: Path, installed: Path
) -> None:
    """The command as written, for real, in a copy of this project: Zoom's settings point at the emulator.

    Meltano's system database (the STATE) and the DuckDB file are the test's own, so each run is a first run.
    """
    require(MELTANO)
    require(DUCKDB_PYTHON)
    database = tmp_path / "zoom.duckdb"
    env = {
        **tap_env(emulator),
        "TARGET_DUCKDB_FILEPATH": str(database),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "README_MELTANO": str(MELTANO),
    }
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "-euo", "pipefail", "-c", f'meltano() {{ "$README_MELTANO" "$@"; }}\n{line}'],
        cwd=installed,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    loaded = duckdb_counts(DUCKDB_PYTHON, database)
    assert {table: rows for table, (rows, _) in loaded.items()} == truth_counts(emulator)
    assert all(rows == keys for rows, keys in loaded.values())
    if "dbt-duckdb:build" in line:
        # the mart counts every loaded message once
        query = "select sum(messages) from zoom_sms_marts.messages_per_day"
        connect = "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True)"
        script = f"{connect}; print(c.sql({query!r}).fetchone()[0])"
        summed = subprocess.run(  # noqa: S603
            [str(DUCKDB_PYTHON), "-c", script, str(database)], capture_output=True, text=True, check=False
        )
        assert summed.returncode == 0, summed.stderr[-2000:]
        assert int(summed.stdout) == loaded["sms_messages"][0]
