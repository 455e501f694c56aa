"""The release check: the sdist and the wheel build, pass twine, and work from a clean install.

Builds both into OUTDIR (default dist/) with ``python -m build``, checks them with
``twine check --strict``, checks that both carry the license text (LICENSE, as the metadata's
License-File names it), installs the wheel in a new virtualenv and runs ``tap-zoom-sms --about``
and ``--discover`` from it. Publishing is then ``twine upload OUTDIR/tap_zoom_sms-*``
(docs/development.md); other Meltano projects install the tap from PyPI or from a git URL with a
tag (docs/install.md), never from a path of this checkout.

Run: scripts/release-check [OUTDIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import typing as t
import zipfile
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LICENSE = ROOT / "LICENSE"
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


def wheel_license(wheel: Path) -> tuple[str, bytes]:
    """The wheel's METADATA and the LICENSE its dist-info carries (PEP 639: .dist-info/licenses/)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = next((n for n in names if n.endswith(".dist-info/licenses/LICENSE")), None)
        return archive.read(metadata).decode(), archive.read(text) if text else b""


def sdist_license(sdist: Path) -> tuple[str, bytes]:
    """The sdist's PKG-INFO and the LICENSE at its top."""
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        pkg_info = archive.extractfile(f"{top}/PKG-INFO")
        text = archive.extractfile(f"{top}/LICENSE") if f"{top}/LICENSE" in archive.getnames() else None
        return (pkg_info.read().decode() if pkg_info else ""), (text.read() if text else b"")


def check_license(out: Path) -> None:
    """The sdist and the wheel must ship LICENSE as it is here, and their metadata must name it."""
    wanted = LICENSE.read_bytes()
    wheel, sdist = next(out.glob("tap_zoom_sms-*.whl")), next(out.glob("tap_zoom_sms-*.tar.gz"))
    for artifact, (metadata, text) in ((wheel, wheel_license(wheel)), (sdist, sdist_license(sdist))):
        headers = HeaderParser().parsestr(metadata)
        if text != wanted or headers["License-Expression"] != "Apache-2.0" or headers["License-File"] != "LICENSE":
            sys.exit(f"release check failed: {artifact.name} lacks LICENSE (Apache-2.0) as this checkout has it")


def main(argv: t.Sequence[str] | None = None) -> None:
    """Build, check, install and describe the release."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", nargs="?", type=Path, default=ROOT / "dist")
    out = parser.parse_args(argv).outdir.resolve()
    wheel = build(out)
    check_license(out)
    about = check_clean_install(wheel)
    lines = [f"{path}  {path.stat().st_size:,} bytes" for path in sorted(out.iterdir())]
    lines.append(f"ok: twine check passed; both carry LICENSE; {wheel.name} installed alone runs --about")
    lines.append(f"publish version {about['version']}: .venv/bin/twine upload {out}/tap_zoom_sms-*")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
