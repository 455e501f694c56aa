"""Releasing the tap and installing it in another Meltano project, as docs/install.md says.

The release check builds and checks the sdist and the wheel, license text included. The recipe of
docs/install.md then adds the tap to a project made by ``meltano init`` with a git URL at a tag (a
``git+file://`` URL of a clone of this repository, tagged as the recipe says, in place of the
public URL the project does not have yet): the tap, installed there from that URL, extracts the
emulator's whole account, and nothing in the project names this checkout.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tap_zoom_sms.emulator import DatasetSpec, Emulator
from tests.projects import ROOT, meltano, run_in, tap_env, truth_counts
from tests.readme import meltano_lines, run_as_written

INSTALL_DOC = ROOT / "docs" / "install.md"
#: The placeholders of the recipe: the repository's URL and the path of a checkout.
DOC_URL = "git+https://<host>/<owner>/tap-zoom-sms.git"
DOC_CHECKOUT = "/path/to/tap-zoom-sms"


def recipe() -> list[str]:
    """The Meltano commands of docs/install.md's block that adds the tap from a git URL."""
    blocks = re.findall(r"^```bash\n(.*?)^```", INSTALL_DOC.read_text(), re.MULTILINE | re.DOTALL)
    block = next(block for block in blocks if DOC_URL in block)
    return meltano_lines(block)


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; it must succeed."""
    return run_in(cwd, "git", *args).stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the release check wrote."""
    out = tmp_path_factory.mktemp("release") / "dist"
    run_in(ROOT, ROOT / "scripts" / "release-check", out)
    return out


def test_release_check_builds_and_checks_both_artifacts(dist: Path) -> None:
    (wheel,) = dist.glob("tap_zoom_sms-*-py3-none-any.whl")
    (sdist,) = dist.glob("tap_zoom_sms-*.tar.gz")
    assert {p.name for p in dist.iterdir()} == {wheel.name, sdist.name}


def test_both_artifacts_carry_the_apache_license_text(dist: Path) -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the whole text, not a notice
    (wheel,) = dist.glob("tap_zoom_sms-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = wheel.name.split("-py3")[0] + ".dist-info"
        assert archive.read(f"{info}/licenses/LICENSE").decode() == license_text
        metadata = archive.read(f"{info}/METADATA").decode()
    (sdist,) = dist.glob("tap_zoom_sms-*.tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(sdist.name.removesuffix(".tar.gz") + "/LICENSE")
        assert member is not None
        assert member.read().decode() == license_text
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()


def test_the_release_check_stops_on_an_artifact_without_the_license(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("tap_zoom_sms-*.whl")
    (sdist,) = dist.glob("tap_zoom_sms-*.tar.gz")
    bare = tmp_path / "dist"
    bare.mkdir()
    (bare / sdist.name).write_bytes(sdist.read_bytes())
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(bare / wheel.name, "w") as copy:
        for item in source.infolist():
            if not item.filename.endswith("/licenses/LICENSE"):
                copy.writestr(item, source.read(item))
    check = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'scripts'); "
        "import release_check; release_check.check_license(Path(sys.argv[1]))"
    )
    result = subprocess.run(  # noqa: S603
        [str(ROOT / ".venv" / "bin" / "python"), "-c", check, str(bare)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"release check failed: {wheel.name} lacks LICENSE (Apache-2.0) as this checkout has it"
    ]


def tagged_clone(dest: Path, tag: str) -> Path:
    """A clone of this repository's committed HEAD, tagged ``tag``: the stand-in for its public URL."""
    run_in(ROOT.parent, "git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest))
    git(dest, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "tag", "-a", tag, "-m", tag)
    return dest


def test_the_install_recipe_adds_the_tap_from_a_git_url_at_a_tag(tmp_path: Path) -> None:
    lines = recipe()
    (tag,) = {match for line in lines for match in re.findall(re.escape(DOC_URL) + r"@(v[0-9.]+)", line)}
    clone = tagged_clone(tmp_path / "clone", tag)
    url = f"git+file://{clone}"
    meltano(tmp_path, "init", "project", "--no_usage_stats")
    project = tmp_path / "project"
    for line in lines:
        written = line.replace(DOC_URL, url).replace(DOC_CHECKOUT, str(clone))
        result = run_as_written(project, written)
        assert result.returncode == 0, f"{line}\n{(result.stdout + result.stderr)[-3000:]}"

    declared = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"]
    assert [(p["name"], p["pip_url"]) for p in declared] == [("tap-zoom-sms", f"{url}@{tag}")]
    assert str(ROOT) not in (project / "meltano.yml").read_text()
    # the plugin runs the copy pip took from the tagged URL, installed in the project
    python = project / ".meltano" / "extractors" / "tap-zoom-sms" / "venv" / "bin" / "python"
    where = run_in(tmp_path, python, "-c", "import tap_zoom_sms; print(tap_zoom_sms.__file__)").stdout
    assert where.startswith(str(project / ".meltano"))
    origin = "import importlib.metadata as m; print(m.distribution('tap-zoom-sms').read_text('direct_url.json'))"
    direct_url = json.loads(run_in(tmp_path, python, "-c", origin).stdout)
    assert direct_url["url"] == f"file://{clone}"
    assert direct_url["vcs_info"]["requested_revision"] == tag
    assert direct_url["vcs_info"]["commit_id"] == git(clone, "rev-parse", tag + "^{commit}").strip()

    with Emulator(DatasetSpec(seed=31, sessions=10, engagements=4)) as emulator:
        out = meltano(project, "invoke", "tap-zoom-sms", env=tap_env(emulator)).stdout
        expected = truth_counts(emulator)
    counts = dict.fromkeys(expected, 0)
    for message in map(json.loads, out.splitlines()):
        if message["type"] == "RECORD":
            counts[message["stream"]] += 1
    assert counts == expected
