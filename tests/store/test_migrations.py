"""Schema migrations: applied in order, once, each in its own transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from store.sqlite.migrate import Migration, available, migrate, schema_version, split_statements
from tests.helpers.store import Env


def test_shipped_files() -> None:
    shipped = available()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    assert [m.name for m in shipped[:2]] == ["0001_initial.sql", "0002_append_view.sql"]
    assert any("CREATE TRIGGER messages_unref" in s for s in shipped[0].statements)


def test_split_keeps_trigger_bodies() -> None:
    script = """-- a comment; with a semicolon
CREATE TABLE t (x);
CREATE TRIGGER g AFTER INSERT ON t BEGIN
    UPDATE t SET x = 1;
    DELETE FROM t WHERE x = 2;
END;
"""
    parts = split_statements(script)
    assert len(parts) == 2 and parts[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (x)")


async def test_applied_once(env: Env) -> None:
    store = await env.open()
    await store.create_user("bob", "pw")
    await store.close()
    with env.db() as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(available()),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again = await env.open()  # re-applying 0001 would fail: its tables exist
    assert (await again.get_user("bob")).name == "bob"


async def test_pending_migrations_run_in_order_and_atomically(tmp_path: Path) -> None:
    one = Migration(1, "0001_a.sql", ("CREATE TABLE a (x)",))
    two = Migration(2, "0002_b.sql", ("CREATE TABLE b (x)", "INSERT INTO a VALUES (1)"))
    bad = Migration(3, "0003_c.sql", ("CREATE TABLE c (x)", "INSERT INTO nowhere VALUES (1)"))
    async with aiosqlite.connect(tmp_path / "m.db", isolation_level=None) as db:
        assert await migrate(db, [one]) == [1]
        assert await migrate(db, [one, two]) == [2]
        assert await migrate(db, [one, two]) == []
        with pytest.raises(sqlite3.OperationalError):
            await migrate(db, [one, two, bad])
        assert await schema_version(db) == 2
        tables = {
            r[0]
            for r in await db.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        assert tables == {"a", "b"}  # 0003 rolled back whole
        with pytest.raises(RuntimeError, match="newer"):
            await migrate(db, [one])
