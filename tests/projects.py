"""Temporary Meltano projects for the tests that run Meltano: a copy of this one, or a new one.

A test that runs Meltano commands works in one of these, so it cannot touch the repository's own
meltano.yml, .env or .meltano (its STATE and its plugins). Also what the loaded tables should hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tap_zoom_sms.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
MELTANO = ROOT / ".tools" / "meltano" / "bin" / "meltano"
#: The tables the tap loads, and the key of each.
TABLES = {
    "sms_sessions": "session_id",
    "sms_messages": "message_id",
    "attachments": "message_id, id",
    "contact_center_sms": "engagement_id",
}
#: What a copy leaves out: what the scripts install, what runs write, caches.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".tools", ".meltano", ".env", "output", "dist", "build", "*.egg-info", "*cache*"
)


def require(path: Path) -> None:
    """Fail with the way out when something scripts/test installs is missing."""
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/test, which installs Meltano and the plugins")


def copy_project(dest: Path) -> Path:
    """Copy this project's own files (not its installs or outputs) to ``dest``."""
    shutil.copytree(ROOT, dest, ignore=NOT_COPIED)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Meltano, tap or target settings (a test sets its own)."""
    prefixes = ("MELTANO_", "TAP_ZOOM_SMS_", "TARGET_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "VIRTUAL_ENV"}
    return {**env, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}


def run_in(project: Path, *command: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in ``project`` with :func:`clean_env` and ``env``; it must succeed."""
    result = subprocess.run(  # noqa: S603
        [str(part) for part in command],
        cwd=project,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def meltano(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Meltano command in ``project``; it must succeed."""
    require(MELTANO)
    return run_in(project, MELTANO, *args, env=env)


def tap_env(emulator: Emulator) -> dict[str, str]:
    """The tap's settings for ``emulator`` as Meltano environment variables, unpaced."""
    config = emulator.tap_config(medium_requests_per_second=0, heavy_requests_per_second=0)
    return {f"TAP_ZOOM_SMS_{key.upper()}": str(value) for key, value in config.items()}


def truth_counts(emulator: Emulator) -> dict[str, int]:
    """How many records of each stream the emulator's account holds."""
    counts = dict.fromkeys(TABLES, 0)
    for stream, _ in emulator.account.truth():
        counts[stream] += 1
    return counts


def duckdb_counts(python: Path, database: Path) -> dict[str, tuple[int, int]]:
    """Rows and distinct keys of each table of schema zoom_sms, read with ``python``'s duckdb."""
    script = (
        "import duckdb, json, sys\n"
        "c = duckdb.connect(sys.argv[1], read_only=True)\n"
        "tables = json.loads(sys.argv[2])\n"
        "print(json.dumps({t: c.execute(f'select count(*), count(distinct ({k})) from zoom_sms.{t}').fetchone()\n"
        "                  for t, k in tables.items()}))\n"
    )
    result = subprocess.run(  # noqa: S603
        [str(python), "-c", script, str(database), json.dumps(TABLES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {table: (pair[0], pair[1]) for table, pair in json.loads(result.stdout).items()}
