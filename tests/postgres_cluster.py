"""A throwaway PostgreSQL for the tests: one cluster per test session, a database per test.

The cluster is made with ``initdb`` in a temporary folder and listens on a free loopback
port and a socket in that folder. It is started the first time a test asks for it and
stopped when the session ends, whatever happens: the fixture's teardown stops it on a
failure or Ctrl-C, and the server is started with a parent-death signal, so even a test
run killed with ``-9`` leaves no server behind. PostgreSQL refuses to run as root: as
root the cluster belongs to ``nobody``.

A test that needs PostgreSQL and cannot have it FAILS with the reason (no skip), so that
a CI without PostgreSQL cannot pass by leaving the PostgreSQL half out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import grp
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

USER = "gateway"
PASSWORD = "gateway-test"
# As root, the cluster's files and server belong to this user (initdb refuses root).
SERVER_USER = "nobody"
START_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against the throwaway PostgreSQL")


def find_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else in Debian's versioned folders (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: where it listens and how to reach it as its superuser."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no server log)"


class ClusterFailed(Exception):
    """The throwaway PostgreSQL could not be made or started; the message says why."""


def _as_server_user() -> list[str]:
    """The prefix that runs a server program: always with a parent-death signal (SIGINT:
    PostgreSQL's fast shutdown), and as ``nobody`` when we are root."""
    if shutil.which("setpriv") is None:
        raise ClusterFailed("setpriv (util-linux) is missing: it starts the server")
    prefix = ["setpriv", "--pdeathsig", "INT"]
    if os.geteuid() == 0:
        group = grp.getgrgid(pwd.getpwnam(SERVER_USER).pw_gid).gr_name
        prefix += [f"--reuid={SERVER_USER}", f"--regid={group}", "--clear-groups"]
    return prefix


def start_cluster() -> Cluster:
    initdb = find_bin("initdb")
    if initdb is None or find_bin("postgres") is None:
        raise ClusterFailed(
            "PostgreSQL's server programs (initdb, postgres) are not installed;"
            " scripts/postgres.sh installs Debian's postgresql package"
        )
    folder = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    prefix = _as_server_user()
    if os.geteuid() == 0:
        shutil.chown(folder, SERVER_USER)
    data = folder / "data"
    pwfile = folder / "password"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(pwfile, SERVER_USER)
    made = subprocess.run(
        [
            *prefix,
            initdb,
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        detail = (made.stderr or made.stdout).decode(errors="replace").strip().splitlines()
        raise ClusterFailed(f"initdb failed: {detail[-1] if detail else made.returncode}")
    return start_server(folder, free_port())


def start_server(folder: Path, port: int) -> Cluster:
    """Start the server of the cluster in ``folder`` on ``port``, ready for connections."""
    data, log = folder / "data", folder / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                *_as_server_user(),
                _server_program(),
                "-D",
                str(data),
                "-k",
                str(folder),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-F",  # no fsync: a throwaway cluster
                "-c",
                "max_connections=200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches pytest only; the teardown stops it
        )
    cluster = Cluster(folder, port, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            tail = cluster.log_tail()
            shutil.rmtree(folder, ignore_errors=True)
            raise ClusterFailed(f"postgres exited with {process.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                ready = pool.submit(asyncio.run, _ready(cluster)).result()
            if ready:
                return cluster
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_cluster(cluster)
            raise ClusterFailed(f"postgres did not accept connections in {START_TIMEOUT:.0f}s")
        time.sleep(0.1)


def _server_program() -> str:
    postgres = find_bin("postgres")
    if postgres is None:
        raise ClusterFailed("PostgreSQL's server program (postgres) is not installed")
    return postgres


def stop_server(cluster: Cluster, signal_number: int = 2) -> None:
    """Stop the server, keeping its data: SIGINT is PostgreSQL's fast shutdown (what
    ``pg_ctl stop -m fast`` sends: sessions are ended, work in flight rolled back), SIGQUIT
    its immediate one (a crash: recovery at the next start)."""
    if cluster.process.poll() is None:
        cluster.process.send_signal(signal_number)
        try:
            cluster.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            cluster.process.kill()
            cluster.process.wait()


def restart_server(cluster: Cluster, signal_number: int = 2) -> None:
    """``pg_ctl restart -m fast``: stop the server and start it again on the same port;
    ``cluster`` then names the new server."""
    stop_server(cluster, signal_number)
    cluster.process = start_server(cluster.folder, cluster.port).process


async def _ready(cluster: Cluster) -> bool:
    try:
        conn = await asyncpg.connect(cluster.url(), timeout=2)
    except (TimeoutError, OSError, asyncpg.CannotConnectNowError):
        return False
    await conn.close()
    return True


def stop_cluster(cluster: Cluster) -> None:
    """Fast shutdown (SIGINT), then kill if it lingers; remove the folder."""
    stop_server(cluster)
    shutil.rmtree(cluster.folder, ignore_errors=True)


def _cluster_while_used() -> Iterator[Cluster]:
    """A new cluster for a fixture, stopped when the fixture ends; a test that cannot have
    it fails with the reason."""
    try:
        cluster = start_cluster()
    except ClusterFailed as exc:
        pytest.fail(f"the throwaway PostgreSQL could not be started: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """The session's throwaway PostgreSQL, started on first use and stopped at the end."""
    yield from _cluster_while_used()


_numbers = itertools.count(1)


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run admin work on its own loop in a thread: a sync fixture, next to the test's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _admin(cluster: Cluster, sql: str) -> None:
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def own_postgres_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL of this test alone, which it may stop and restart
    (:func:`stop_server`, :func:`restart_server`); the session's one is shared."""
    yield from _cluster_while_used()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """A new empty database on the throwaway cluster, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    _run(_admin(postgres_cluster, f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield postgres_cluster.url(name)
    finally:
        with contextlib.suppress(asyncpg.PostgresError):
            _run(_admin(postgres_cluster, f'DROP DATABASE "{name}" WITH (FORCE)'))
