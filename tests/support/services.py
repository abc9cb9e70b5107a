"""Start real servers for the tests from binaries on the machine, or explain why not.

``make test`` is self-sufficient: nothing has to be running beforehand. Where a binary is
missing the tests that need it are skipped with the reason, except under ``CI=true``, where a
skipped service test is a failure (CI installs the packages, so a skip would hide a break).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, *patterns: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for pattern in patterns:
        matches = sorted(Path("/").glob(pattern.lstrip("/")), reverse=True)
        if matches:
            return str(matches[0])
    return None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def restart(self) -> None:
        """``pg_ctl restart -m fast``, on the same port and options: every client connection is
        cut and open transactions roll back, as when an operator restarts the server."""
        pg_ctl = find_binary("pg_ctl", "/usr/lib/postgresql/*/bin/pg_ctl")
        prefix, _ = _as_postgres_user()
        log = self.data_dir.parent / "log"
        command = [*prefix, str(pg_ctl), "-D", str(self.data_dir), "-l", str(log), "-m", "fast"]
        subprocess.run([*command, "-w", "restart"], check=True, capture_output=True)


def _as_postgres_user() -> tuple[list[str], int | None]:
    """initdb and pg_ctl refuse root: run them as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser") or "runuser"
    return [runuser, "-u", "postgres", "--"], uid


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster in a temporary directory on a free loopback port."""
    initdb = find_binary("initdb", "/usr/lib/postgresql/*/bin/initdb")
    pg_ctl = find_binary("pg_ctl", "/usr/lib/postgresql/*/bin/pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    prefix, uid = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="esplora-pg-"))
    if uid is not None:
        os.chown(root, uid, -1)
    data, port = root / "data", free_port()
    user = "postgres" if uid is not None else pwd.getpwuid(os.geteuid()).pw_name
    run = [*prefix, str(initdb), "-D", str(data), "-A", "trust", "-U", user, "--no-sync"]
    subprocess.run(run, check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*prefix, str(pg_ctl), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w"]
    subprocess.run([*start, "start"], check=True, capture_output=True)
    try:
        yield PostgresServer("127.0.0.1", port, user, data)
    finally:
        stop = [*prefix, str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A Redis server on a free loopback port, persisting nothing, in a temporary directory."""
    binary = find_binary("redis-server")
    if not binary:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="esplora-redis-"))
    port = free_port()
    command = [
        str(binary),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--daemonize",
        "no",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        yield RedisServer(port, root)
    finally:
        process.kill()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
