"""A throwaway PostgreSQL cluster for the tests: never the machine's default cluster.

`pg_cluster` (session-scoped) runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/N/bin``,
the highest N, or ``IMAPD_PG_BIN``): ``initdb`` into a temporary directory (as the ``postgres``
system user when the tests run as root: PostgreSQL refuses to run as root), ``pg_ctl start``
on a free loopback port with its Unix socket in that directory, and at the end ``pg_ctl stop
-m immediate`` and the directory removed. The cluster trades durability for speed
(``fsync=off``): it lives for one test run.

`PgCluster.database()` makes a fresh database per test from a template that already has the
store's schema (store/postgres/migrate.py ran once on it), so a test starts from an empty,
migrated store in a few milliseconds; `drop()` removes it.

Without PostgreSQL binaries (or without asyncpg) the PostgreSQL variants skip with a message
saying what is missing, except when ``CI`` is set: then they fail, so CI cannot go green
without having run them (.ci/run installs ``postgresql``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
PG_ROOT = Path("/usr/lib/postgresql")
TEMPLATE = "imapd_template"
SUPERUSER = "postgres"


def find_bin() -> Path | None:
    """The bin directory of the newest local PostgreSQL, or None."""
    if env := os.environ.get("IMAPD_PG_BIN"):
        return Path(env) if (Path(env) / "initdb").exists() else None
    if not PG_ROOT.is_dir():
        return None
    versions = sorted(
        (p for p in PG_ROOT.iterdir() if p.name.isdigit() and (p / "bin" / "initdb").exists()),
        key=lambda p: int(p.name),
    )
    return versions[-1] / "bin" if versions else None


def unavailable(reason: str) -> None:
    """Skip the PostgreSQL variant with ``reason``, or fail it in CI."""
    message = f"PostgreSQL tests need {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: .ci/run installs the postgresql package)")
    pytest.skip(message)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also from inside a running
    event loop (a session fixture first requested by an async test): in a thread with its
    own loop."""
    box: list[T] = []
    errors: list[BaseException] = []

    async def main() -> None:
        box.append(await make())

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001  (re-raised in the calling thread)
            errors.append(exc)

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    bin: Path
    root: Path  # data directory and socket directory live under it
    port: int
    as_user: list[str]  # the runuser prefix when we are root
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def dsn(self, database: str = "postgres") -> str:
        """A URL over the Unix socket (libpq's ``host=`` a directory)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, check=False, timeout=120
        )

    def start(self) -> subprocess.CompletedProcess[str]:
        """``pg_ctl start`` (waiting until it accepts connections): at creation, and again
        after `stop` (the fault tests: PostgreSQL going away while serving)."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        data = str(self.root / "data")
        log = str(self.root / "server.log")
        return self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            data,
            "-o",
            options,
            "-l",
            log,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> subprocess.CompletedProcess[str]:
        """``pg_ctl stop -m MODE``: every connection is dropped."""
        data = str(self.root / "data")
        return self.run(str(self.bin / "pg_ctl"), "-D", data, "-m", mode, "-w", "stop")

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def database(self) -> str:
        """A new database cloned from the migrated template; returns its DSN."""
        name = f"t{os.getpid()}_{next(self._names)}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return self.dsn(name)

    async def drop(self, dsn: str) -> None:
        name = dsn.split("/")[-1].split("?")[0]
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_cluster() -> PgCluster:
    """initdb + pg_ctl start in a new temporary directory; skips or fails when impossible."""
    bindir = find_bin()
    if bindir is None:
        unavailable(
            f"PostgreSQL server binaries (no initdb under {PG_ROOT}/*/bin; "
            "apt-get install postgresql)"
        )
    assert bindir is not None
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        unavailable("asyncpg (pip install -e '.[postgres]')")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="imapd-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(SUPERUSER)
        except KeyError:
            shutil.rmtree(root)
            unavailable("a 'postgres' system user to run the server as (running as root)")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", SUPERUSER, "--"]
    cluster = PgCluster(bindir, root, free_port(), as_user)
    cluster.run("mkdir", str(cluster.socket_dir))
    init = cluster.run(
        str(bindir / "initdb"),
        "-D",
        str(root / "data"),
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr or init.stdout}")
    start = cluster.start()
    if start.returncode != 0:
        log = (
            (root / "server.log").read_text(errors="replace")
            if (root / "server.log").exists()
            else ""
        )
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {start.stderr or start.stdout}\n{log}")
    try:
        run_sync(lambda: _make_template(cluster))
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


async def _make_template(cluster: PgCluster) -> None:
    from store.postgres.migrate import connect_and_migrate

    await cluster._admin(f"CREATE DATABASE {TEMPLATE}")
    conn = await connect_and_migrate(cluster.dsn(TEMPLATE))
    await conn.close()


def stop_cluster(cluster: PgCluster) -> None:
    cluster.run(
        str(cluster.bin / "pg_ctl"),
        "-D",
        str(cluster.root / "data"),
        "-m",
        "immediate",
        "-w",
        "stop",
    )
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
async def dsn(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """A fresh database on the session's cluster for one test, dropped afterwards."""
    url = await pg_cluster.database()
    yield url
    await pg_cluster.drop(url)
