"""Installing the tap in another Meltano project, as the README says.

The release check builds and checks the wheel and writes the plugin definition that points at
it; the README's commands then add the tap to a project made by ``meltano init``, and the tap,
installed there from the wheel, extracts the emulator's whole account.
"""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest
import yaml

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.projects import ROOT, meltano, run_in, tap_env, truth_counts
from tests.readme import bash_blocks, meltano_lines, run_as_written

if t.TYPE_CHECKING:
    from pathlib import Path

#: Where the README's recipe says the release check wrote its files.
README_DIST = "/path/to/tap-zoom-sms/dist"


def recipe() -> list[str]:
    """The README's block for another Meltano project."""
    return next(block for block in bash_blocks() if "--from-ref" in block).splitlines()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the release check wrote, as the recipe's first command runs it."""
    assert recipe()[0] == "scripts/release-check"
    out = tmp_path_factory.mktemp("release") / "dist"
    run_in(ROOT, ROOT / "scripts" / "release-check", out)
    return out


def test_release_check_builds_checks_and_describes_the_wheel(dist: Path) -> None:
    (wheel,) = dist.glob("tap_zoom_sms-*-py3-none-any.whl")
    (sdist,) = dist.glob("tap_zoom_sms-*.tar.gz")
    assert {p.name for p in dist.iterdir()} == {wheel.name, sdist.name, "tap-zoom-sms.yml"}
    ref = yaml.safe_load((dist / "tap-zoom-sms.yml").read_text())
    hub = yaml.safe_load((ROOT / "hub" / "tap-zoom-sms.yml").read_text())
    assert ref == {**hub, "pip_url": str(wheel)}


def test_the_readme_recipe_adds_the_tap_to_a_new_meltano_project(dist: Path, tmp_path: Path) -> None:
    meltano(tmp_path, "init", "project", "--no_usage_stats")
    project = tmp_path / "project"
    for line in meltano_lines("\n".join(recipe())):
        result = run_as_written(project, line.replace(README_DIST, str(dist)))
        assert result.returncode == 0, f"{line}\n{(result.stdout + result.stderr)[-3000:]}"
    declared = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"]
    (wheel,) = dist.glob("tap_zoom_sms-*.whl")
    assert [(p["name"], p["pip_url"]) for p in declared] == [("tap-zoom-sms", str(wheel))]
    # the plugin runs the wheel's copy, installed in the project, not this checkout
    python = project / ".meltano" / "extractors" / "tap-zoom-sms" / "venv" / "bin" / "python"
    where = subprocess.run(  # noqa: S603
        [str(python), "-c", "import tap_zoom_sms; print(tap_zoom_sms.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(project / ".meltano"))

    with Emulator(DatasetSpec(seed=31, sessions=10, engagements=4)) as emulator:
        out = meltano(project, "invoke", "tap-zoom-sms", env=tap_env(emulator)).stdout
        expected = truth_counts(emulator)
    counts = dict.fromkeys(expected, 0)
    for message in map(json.loads, out.splitlines()):
        if message["type"] == "RECORD":
            counts[message["stream"]] += 1
    assert counts == expected
