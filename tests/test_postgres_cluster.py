"""The tests' throwaway PostgreSQL: it serves, and it never outlives the test run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from postgres_cluster import Cluster, start_cluster, stop_cluster

pytestmark = pytest.mark.postgres

HERE = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_cluster_serves_on_loopback_as_a_non_root_user(postgres_url: str) -> None:
    """A test's database takes writes, on 127.0.0.1, from a server not running as root."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TABLE t (x INTEGER)")
        await conn.execute("INSERT INTO t VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SELECT current_setting('data_directory')")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        assert os.stat(f"/proc/{pid}").st_uid != 0
    finally:
        await conn.close()


async def test_a_wrong_password_is_refused(postgres_cluster: Cluster) -> None:
    """The cluster checks passwords (scram-sha-256), so the store's password errors are real."""
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(postgres_cluster.url(password="wrong"))


def test_a_stopped_cluster_leaves_no_server_and_no_folder() -> None:
    """Stopping a cluster ends its server and removes its temporary folder."""
    cluster = start_cluster()
    stop_cluster(cluster)
    assert cluster.process.poll() is not None
    assert not cluster.folder.exists()


def test_a_test_run_killed_with_9_takes_its_server_along() -> None:
    """When the process that started the cluster is killed with -9, the server stops too."""
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from postgres_cluster import start_cluster\n"
        "c = start_cluster()\n"
        "print(c.process.pid, c.folder, flush=True)\n"
        "time.sleep(60)\n"
    )
    command = [sys.executable, "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        pid_text, folder = child.stdout.readline().split()
        server = int(pid_text)
        assert _alive(server)
        child.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    stopped = not _alive(server)
    subprocess.run(["rm", "-rf", folder], check=False)
    assert stopped, "the server outlived the process that started it"
