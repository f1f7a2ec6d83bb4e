"""Fixtures for handlers without a socket: a real SqliteStore in tmp_path, a real EventBus
and a `TestContext` (tests/helpers/handlers.py) logged in as alice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from imapd.config import Config
from notify.bus import EventBus
from store.sqlite import SqliteStore
from tests.helpers.handlers import TestContext

if TYPE_CHECKING:
    from imapd.commands.context import Context


@pytest.fixture
async def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def store(tmp_path: Path, bus: EventBus) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "store.sqlite3", bus.publish, scrypt_n=2)
    yield store
    await store.close()


@pytest.fixture
async def ctx(store: SqliteStore, bus: EventBus, tmp_path: Path) -> TestContext:
    user = await store.create_user("alice", "secret")
    context = TestContext(store, bus, Config(data_dir=tmp_path), user)
    typed: Context = context  # mypy: the fake implements the Protocol the session does
    assert typed is context
    return context
