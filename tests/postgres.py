"""A real PostgreSQL server for the tests, one per test session.

`postgres_server` runs Debian's PostgreSQL binaries (initdb, pg_ctl) in a temporary
directory: listening on 127.0.0.1 at a free port and on a Unix socket in that
directory, never anywhere else (the tests run inside their own network namespace).
PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
user (which Debian's package creates; else `nobody`), owning the temporary directory.
`postgres_dsn` gives each test a fresh, empty database on that server. Without the
binaries the tests that need them skip and say what to install.

The server runs with fsync off (-F): the tests check what each session asks for
(synchronous_commit on), not the test machine's disk; a crash loses nothing that matters.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

NOT_FOUND = "PostgreSQL server not found: install Debian's postgresql (scripts/setup.sh does where apt is available)"
USER = "powerplane"  # the superuser initdb creates; trust authentication on loopback only


def _bin_dir() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path, workdir: Path, port: int, run_as: list[str]):
        self.bin_dir, self.workdir, self.port, self.run_as = bin_dir, workdir, port, run_as
        self._names = itertools.count(1)

    def dsn(self, dbname: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"host={host} port={self.port} user={USER} dbname={dbname}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.run_as, str(self.bin_dir / tool), *args], capture_output=True, text=True, timeout=60, check=False)

    def new_database(self) -> str:
        """A fresh, empty database; its DSN."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)


def start_postgres(also_listen: str = "", trust_net: str = ""):
    """Start a server (a generator: yields it, stops it when resumed); pytest.skip without one.
    `also_listen`: one more address to listen on, `trust_net` (a CIDR) the clients allowed there
    (the partition test's veth)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip(NOT_FOUND)
    workdir = Path(tempfile.mkdtemp(prefix="powerplane-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or shutil.which("runuser") is None:
            pytest.skip("PostgreSQL refuses to run as root and there is no `postgres` or `nobody` user to run it as (or no runuser)")
        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    server = PostgresServer(bin_dir, workdir, _free_port(), run_as)
    data = workdir / "data"
    try:
        done = server.run("initdb", "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C")
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr.strip()[-2000:]}")
        if trust_net:
            with open(data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {trust_net} trust\n")
        listen = ",".join(a for a in ("127.0.0.1", also_listen) if a)
        options = f"-k {workdir} -h {listen} -p {server.port} -F -c max_connections=200"
        done = server.run("pg_ctl", "start", "-D", str(data), "-l", str(workdir / "server.log"), "-w", "-t", "60", "-o", options)
        if done.returncode != 0:
            log = (workdir / "server.log").read_text() if (workdir / "server.log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {done.stdout.strip()} {done.stderr.strip()} {log[-2000:]}")
        yield server
    finally:
        if (data / "postmaster.pid").exists():
            server.run("pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w")
        shutil.rmtree(workdir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server():
    yield from start_postgres()


@pytest.fixture
def postgres_dsn(postgres_server) -> str:
    return postgres_server.new_database()
