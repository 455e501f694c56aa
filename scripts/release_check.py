"""The release check: the sdist and the wheel build, pass twine, and work from a clean install.

Builds both into OUTDIR (default dist/) with ``python -m build``, checks them with
``twine check --strict``, installs the wheel in a new virtualenv and runs ``tap-zoom-sms --about``
and ``--discover`` from it, then writes OUTDIR/tap-zoom-sms.yml: the Meltano Hub definition
(hub/tap-zoom-sms.yml) with ``pip_url`` set to the wheel, so that any Meltano project can add the
tap with ``meltano add --plugin-type extractor tap-zoom-sms --from-ref OUTDIR/tap-zoom-sms.yml``.
Publishing is then ``twine upload OUTDIR/tap_zoom_sms-*``.

Run: scripts/release-check [OUTDIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HUB_FILE = ROOT / "hub" / "tap-zoom-sms.yml"
UV = ROOT / ".tools" / "uv" / "bin" / "uv"
STREAMS = {"sms_sessions", "sms_messages", "attachments", "contact_center_sms"}


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command and return its output; on failure print what it said and stop."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"release check failed: {' '.join(map(str, command))}\n{result.stdout}{result.stderr}")
    return result.stdout


def build(out: Path) -> Path:
    """Build the sdist and the wheel into ``out``, check them with twine; return the wheel."""
    shutil.rmtree(out, ignore_errors=True)
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    run(sys.executable, "-m", "twine", "check", "--strict", *sorted(out.iterdir()))
    return next(out.glob("tap_zoom_sms-*.whl"))


def check_clean_install(wheel: Path) -> dict[str, t.Any]:
    """Install the wheel alone in a new virtualenv; its --about and --discover must answer."""
    with tempfile.TemporaryDirectory(prefix="tap-zoom-sms-release-") as tmp:
        venv = Path(tmp) / "venv"
        run(UV, "venv", "--quiet", "--python", sys.executable, venv)
        run(UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel)
        tap = venv / "bin" / "tap-zoom-sms"
        about = json.loads(run(tap, "--about", "--format=json", cwd=Path(tmp)))
        catalog = json.loads(run(tap, "--discover", cwd=Path(tmp)))
    streams = {stream["tap_stream_id"] for stream in catalog["streams"]}
    if about.get("name") != "tap-zoom-sms" or streams != STREAMS:
        sys.exit(f"release check failed: --about names {about.get('name')!r}, --discover gives {sorted(streams)}")
    return about


def write_plugin_ref(wheel: Path, out: Path) -> Path:
    """Write the Hub definition with pip_url set to the wheel, for ``meltano add --from-ref``."""
    definition = yaml.safe_load(HUB_FILE.read_text())
    definition["pip_url"] = str(wheel.resolve())
    ref = out / "tap-zoom-sms.yml"
    ref.write_text(yaml.safe_dump(definition, sort_keys=False, width=120))
    return ref


def main(argv: t.Sequence[str] | None = None) -> None:
    """Build, check, install and describe the release."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", nargs="?", type=Path, default=ROOT / "dist")
    out = parser.parse_args(argv).outdir.resolve()
    wheel = build(out)
    about = check_clean_install(wheel)
    ref = write_plugin_ref(wheel, out)
    lines = [f"{path}  {path.stat().st_size:,} bytes" for path in sorted(out.iterdir())]
    lines.append(f"ok: twine check passed; {wheel.name} installed alone runs --about (version {about['version']})")
    lines.append(f"add it to a Meltano project: meltano add --plugin-type extractor tap-zoom-sms --from-ref {ref}")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
