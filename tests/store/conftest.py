"""Fixtures for store tests (the helpers they use are tests/helpers/store.py).

Both backends run the same tests: a module that sets ``BOTH_BACKENDS = True`` has each test
that uses ``env`` (or ``store``) run once per backend (the ``backend`` fixture parameter of
tests/conftest.py: SQLite in tmp_path, or a fresh database on the throwaway PostgreSQL
cluster of tests/helpers/pg.py), except tests marked ``sqlite_only`` (they read the SQLite
file itself or what only the SQLite store has: content_search texts, query plans, its
migrations).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pg import PgCluster
from tests.helpers.store import Clock, Env


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def env(
    tmp_path: Path, clock: Clock, backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[Env]:
    e = Env(tmp_path / "store.sqlite3", clock)
    cluster: PgCluster | None = None
    if backend == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        assert cluster is not None
        e.dsn = await cluster.database()
    yield e
    for store in e.stores:
        await store.close()
    if cluster is not None and e.dsn is not None:
        await cluster.drop(e.dsn)


@pytest.fixture
async def store(env: Env) -> Any:
    return await env.open()
