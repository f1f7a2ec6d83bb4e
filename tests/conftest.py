"""Shared fixtures: a real server on a free loopback port, in a thread with its own loop.

The server runs exactly as `imapd serve` does (same Server class, real SQLite file in
tmp_path), with cheap password hashing "for speed and determinism", no failed-login
delay, and per-address connection limits wide enough for one test's clients. Readiness is
signalled, never slept for. Teardown fails the test if the server logged an unhandled
error.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imapd.config import Config
from imapd.server import Server
from tests.helpers.pg import PgCluster, dsn, pg_cluster, run_sync  # noqa: F401 (fixtures)
from tests.helpers.server import PASSWORD, RunningServer

__all__ = ["PASSWORD", "RunningServer"]  # also importable from here, as before

# --- issue 18: both store backends through one fixture parameter ---------------------------
#: A test module that sets ``BOTH_BACKENDS = True`` runs each test using ``backend`` (through
#: ``env``/``store`` in tests/store, ``server``/``server_factory`` here) once per backend:
#: SQLite in tmp_path, and PostgreSQL (a fresh database on the session's throwaway cluster,
#: tests/helpers/pg.py: skipped with a message without PostgreSQL binaries, failing in CI).
#: A test marked ``sqlite_only`` runs on SQLite alone (it reads the SQLite file itself).
BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: a test not run on PostgreSQL (BOTH_BACKENDS, tests/conftest.py)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "backend" in metafunc.fixturenames
        and getattr(metafunc.module, "BOTH_BACKENDS", False)
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """ "sqlite", or "postgres" where the module asks for both (BOTH_BACKENDS)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store URL the test's servers use: None (SQLite in the data directory), or a fresh
    PostgreSQL database, set as $IMAPD_STORE for the test (store/open.py reads it, so the
    in-process server and any `imapd` command the test runs share that store)."""
    if backend != "postgres":
        yield None
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = run_sync(cluster.database)
    patch = pytest.MonkeyPatch()
    patch.setenv("IMAPD_STORE", url)
    try:
        yield url
    finally:
        patch.undo()
        run_sync(lambda: cluster.drop(url))


# --- end issue 18 ---------------------------------------------------------------------------


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class ServerThread:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: Server | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="imapd-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc
            self.ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self.server = await Server.create(self.config)
        addresses = await self.server.start()
        self.address = addresses[0]
        self.ready.set()
        await self.server._stopped.wait()

    def start(self) -> RunningServer:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("server did not start")
        if self.error is not None:
            raise self.error
        assert self.server is not None
        host, port = self.address
        return RunningServer(host, port, self.config, self.server, self.loop)

    def stop(self) -> None:
        if self.server is not None and self.thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop)
            fut.result(30)
        self.thread.join(30)


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    base = Config(
        data_dir=tmp_path / "data",
        listen=("127.0.0.1", 0),
        scrypt_n=2,
        auth_failure_delay=0.0,
        shutdown_timeout=2.0,
        # Every test client comes from 127.0.0.1, some tests as one user on a dozen
        # connections: the per-address limits are tested with their own values.
        max_connections_per_ip=1000,
        max_connections_per_user_ip=100,
    )
    return replace(base, **overrides)


@pytest.fixture
def server_factory(tmp_path: Path, store_url: str | None) -> Iterator[Any]:
    threads: list[ServerThread] = []
    collector = _ErrorCollector()
    logging.getLogger("imapd").addHandler(collector)

    def start(**overrides: Any) -> RunningServer:
        thread = ServerThread(make_config(tmp_path, **overrides))
        threads.append(thread)
        return thread.start()

    yield start
    for thread in threads:
        thread.stop()
    logging.getLogger("imapd").removeHandler(collector)
    errors = [r for r in collector.records if r.exc_info]
    assert not errors, f"server logged unhandled errors: {[r.getMessage() for r in errors]}"


@pytest.fixture
def server(server_factory: Any) -> RunningServer:
    running: RunningServer = server_factory()
    running.add_user("alice")
    running.add_user("bob")
    return running
