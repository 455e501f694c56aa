"""What a user installs: the wheel carries its schemas, and meltano.yml matches --about."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("tap_zoom_sms-*.whl"))


def test_wheel_ships_the_schemas(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for stream in ("sms_sessions", "sms_messages", "attachments", "contact_center_sms"):
        assert f"tap_zoom_sms/schemas/{stream}.json" in names


def test_installed_wheel_discovers_the_four_streams(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # run from elsewhere, with the installed copy first on the path: no checkout to fall back on
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tap_zoom_sms.tap as m, sys; print(m.__file__, file=sys.stderr); m.main()",
            "--discover",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(target) in result.stderr
    catalog = json.loads(result.stdout)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}
    assert streams["attachments"]["key_properties"] == ["message_id", "id"]
    assert streams["sms_messages"]["replication_key"] == "date_time"


def test_meltano_yml_declares_the_extractor() -> None:
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = meltano["plugins"]["extractors"][0]
    assert extractor["namespace"] == "tap_zoom_sms"
    assert extractor["pip_url"] == "-e . --constraint ${MELTANO_PROJECT_ROOT}/.venv/tap-constraints.txt"
    assert {"state", "catalog", "discover", "about", "stream-maps"} <= set(extractor["capabilities"])
    assert {s["name"]: s for s in extractor["settings"]}["client_secret"]["sensitive"] is True


def test_hub_definition_and_readme_settings_match_about() -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "gen_metadata.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    hub = yaml.safe_load((ROOT / "hub" / "tap-zoom-sms.yml").read_text())
    for key in ("name", "namespace", "variant", "label", "description", "capabilities", "settings", "keywords"):
        assert hub[key], key
    # meltano.yml declares the same settings as the Hub file, which --check just held to --about
    meltano = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"][0]

    def declared(settings: list[dict]) -> dict[str, tuple]:
        return {s["name"]: (s["kind"], bool(s.get("sensitive")), s.get("value")) for s in settings}

    assert declared(meltano["settings"]) == declared(hub["settings"])
    assert hub["settings_group_validation"] == meltano["settings_group_validation"]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_tap_plugin_runs_the_locked_versions() -> None:
    """Meltano's virtualenv of the tap holds uv.lock's versions, as .venv does (scripts/lib/venv.sh)."""
    python = ROOT / ".meltano" / "extractors" / "tap-zoom-sms" / "venv" / "bin" / "python"
    constraints = ROOT / ".venv" / "tap-constraints.txt"
    for path in (python, constraints):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/test, which installs it")
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", constraints.read_text(), re.MULTILINE)
    locked = {_canonical(name): version for name, version in pins}
    listing = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    result = subprocess.run([str(python), "-c", listing], capture_output=True, text=True, check=True)  # noqa: S603
    installed = {_canonical(name): version for name, version in json.loads(result.stdout).items()}
    assert {"singer-sdk", "requests", "pyjwt", "pendulum", "msgspec"} <= locked.keys() & installed.keys()
    both = locked.keys() & installed.keys()  # a lock entry whose marker excludes this Python is not installed
    assert {name: installed[name] for name in both} == {name: locked[name] for name in both}
