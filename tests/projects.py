"""Temporary Meltano projects for the tests that run Meltano: a copy of this one, or a new one.

A test that runs Meltano commands works in one of these, so it cannot touch the repository's own
meltano.yml, .env or .meltano (its STATE and its plugins). Also what the loaded tables should hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
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


#: Writes, for each plugin venv of the project given, the fingerprint Meltano computes for it there
#: (tap-zoom-sms's pip_url names the project's path), with Meltano's own code: a venv whose
#: fingerprint matches is run as it is, never reinstalled.
FINGERPRINTS = """
import os, sys
from pathlib import Path
from meltano.core.plugin import PluginType
from meltano.core.plugin_install_service import get_pip_install_args
from meltano.core.project import Project
from meltano.core.venv_service import VirtualEnv
project = Project(Path(sys.argv[1]))
env = {**os.environ, "MELTANO_PROJECT_ROOT": str(project.root)}
for venv in sys.argv[2:]:
    plugin_type, name = Path(venv).parts[-3:-1]
    plugin = project.plugins.find_plugin(name, plugin_type=PluginType(plugin_type))
    args = get_pip_install_args(project, plugin, env)
    VirtualEnv(Path(venv), python=plugin.python or project.settings.get("python")).write_fingerprint(args)
"""


def project_with_plugins(dest: Path) -> Path:
    """A copy of this project (:func:`copy_project`) with this project's installed plugins (:func:`link_plugins`)."""
    return link_plugins(copy_project(dest))


def link_plugins(project: Path) -> Path:
    """Give a copy of this project this project's installed plugins, leaving this project's .meltano alone.

    Each plugin's virtualenv in the copy is a folder of links to the installed one's contents, with
    its own fingerprint for the copy, so Meltano runs it without installing anything (were it to
    reinstall, it would delete the links, never what they point to). The system database (the
    STATE), dbt's target and logs and every other file a run writes are the copy's own.
    """
    require(MELTANO)
    venvs = []
    for installed in sorted(ROOT.glob(".meltano/*/*/venv")):
        venv = project / installed.relative_to(ROOT)
        venv.mkdir(parents=True)
        for entry in installed.iterdir():
            if entry.name != ".meltano_plugin_fingerprint":
                (venv / entry.name).symlink_to(entry)
        venvs.append(str(venv))
    python = MELTANO.parent / "python"
    run_in(project, python, "-c", FINGERPRINTS, project, *venvs, env={"MELTANO_PROJECT_ROOT": str(project)})
    return project


def state_ids(project: Path) -> list[str]:
    """The state IDs in ``project``'s own system database (SQLite, Meltano's default), as ``meltano state list``."""
    database = project / ".meltano" / "meltano.db"
    if not database.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        return sorted(row[0] for row in connection.execute("select state_id from state"))


def meltano_tree(project: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``project``'s .meltano with its size and modification time (nanoseconds).

    Python's bytecode caches are left out: running a plugin may write them into its virtualenv, and
    they are no state of the project.
    """
    tree = {}
    for folder, dirs, files in os.walk(project / ".meltano"):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        for name in files:
            stat = (Path(folder) / name).lstat()
            tree[str(Path(folder, name).relative_to(project))] = (stat.st_size, stat.st_mtime_ns)
    return tree


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
