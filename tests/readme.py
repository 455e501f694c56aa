"""The shell commands of the README and of docs/, read from their text, and a way to run them as written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.projects import MELTANO, ROOT, clean_env, require

README = ROOT / "README.md"
#: The user-facing pages: the README, then docs/ in name order.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: Runs a README line with ``meltano`` as the installed Meltano, ``meltano run`` as a dry run
#: (it resolves the plugins and the blocks, and moves no data).
MELTANO_SHIM = """
meltano() {
  if [ "$1" = run ]; then shift; "$README_MELTANO" run --no-install --dry-run "$@"; else "$README_MELTANO" "$@"; fi
}
"""


def bash_blocks(page: Path = README) -> list[str]:
    """The bash code blocks of ``page`` (the README unless told)."""
    return re.findall(r"^```bash\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)


def meltano_lines(block: str) -> list[str]:
    """The lines of a block that run Meltano."""
    return [line for line in block.splitlines() if line.startswith("meltano ")]


def inline_meltano_commands(page: Path = README) -> list[str]:
    """The ``meltano run`` and ``meltano config`` commands quoted inline in the prose of ``page``.

    Other inline mentions (``meltano init``, ``meltano add --from-ref``, a bare ``meltano config set``)
    name a command rather than give one to run here.
    """
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"`(meltano (?:run|config) [^`\s]+ [^`\s][^`\n]*)`", prose)


def run_as_written(project: Path, line: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one README line with bash in ``project``, ``meltano`` as MELTANO_SHIM makes it."""
    require(MELTANO)
    return subprocess.run(  # noqa: S603
        ["/bin/bash", "-euo", "pipefail", "-c", MELTANO_SHIM + line],
        cwd=project,
        env=clean_env(README_MELTANO=str(MELTANO), **(env or {})),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
