"""Fixtures for store tests (the helpers they use are tests/helpers/store.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.sqlite import SqliteStore
from tests.helpers.store import Clock, Env


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def env(tmp_path: Path, clock: Clock) -> AsyncIterator[Env]:
    e = Env(tmp_path / "store.sqlite3", clock)
    yield e
    for store in e.stores:
        await store.close()


@pytest.fixture
async def store(env: Env) -> SqliteStore:
    return await env.open()
