"""A throwaway PostgreSQL cluster on 127.0.0.1 for the loading tests (Debian's server binaries,
which scripts/test installs); the ``postgres`` fixture gives one per test module."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as the postgres user when we are root."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.fail("PostgreSQL server binaries are missing: run scripts/test, which installs them")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="tap-zoom-sms-pg-"))
        self.port = _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> str:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=False)  # noqa: S603
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self) -> Postgres:
        data = str(self.dir / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        self.sql("create database zoom", database="postgres")
        return self

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query: str, database: str = "zoom") -> list[list[str]]:
        out = self._run(
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-F",
            "\t",
            "-c",
            query,
        )
        return [line.split("\t") for line in out.splitlines()]


@pytest.fixture(scope="module")
def postgres() -> t.Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()
