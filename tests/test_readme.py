"""The README's Meltano commands, run as written in a temporary copy of the project.

They run with the Meltano that scripts/test installs, so a command this Meltano does not know
(``meltano config tap-zoom-sms set ...`` was one) fails here; the settings they set are then read
back. The recipe for another Meltano project runs in tests/test_install_elsewhere.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t

import pytest
import yaml

from tests.projects import ROOT, copy_project, meltano
from tests.readme import README, bash_blocks, inline_meltano_commands, meltano_lines, run_as_written

if t.TYPE_CHECKING:
    from pathlib import Path

TOKEN = "token-of-the-readme-test"  # what "$TOKEN_FROM_YOUR_OAUTH_FLOW" holds here


def commands_here() -> list[str]:
    """The README's Meltano commands for this project: its code blocks' and its prose's."""
    lines = [line for block in bash_blocks() if "--from-ref" not in block for line in meltano_lines(block)]
    return lines + inline_meltano_commands()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("readme") / "project")
    (project / ".tools").symlink_to(ROOT / ".tools")
    return project


@pytest.fixture(scope="module")
def ran(project: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Every command, in the README's order."""
    return [(line, run_as_written(project, line, {"TOKEN_FROM_YOUR_OAUTH_FLOW": TOKEN})) for line in commands_here()]


def test_the_readme_has_its_meltano_commands() -> None:
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
