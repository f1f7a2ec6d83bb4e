"""Header blocks stored apart from the message (issue 17): SQLite's ``content_header`` table
(migration *_content_header.sql, its trigger and store/sqlite/headers.py) and PostgreSQL's
generated ``contents.header`` column hold every message's first ``header_len`` octets (blocks
up to HEADER_ROW_MAX), whoever stored it: APPEND, a spooled APPEND, COPY, REPLACE; the
migration fills them for a store made at the schema before it; `fetch_plain` and `fetch`
read them, and a longer block from the message as before."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import asyncpg

from store.api import HEADER_ROW_MAX, NewMessage, User
from store.postgres import migrate as pg_migrate
from store.sqlite import migrate as sqlite_migrate
from tests.helpers.store import ORIGIN, Env, message, new

BOTH_BACKENDS = True

LONG = message("long", extra="X-Long: " + "y" * HEADER_ROW_MAX + "\r\n")


def stored(env: Env) -> dict[int, tuple[bytes | None, bytes]]:
    """contents id -> (the stored header block or None, the message's first header_len
    octets), read from the store's own tables."""
    if env.backend == "sqlite":
        sql = (
            "SELECT c.id, h.header, substr(c.raw, 1, c.header_len) FROM contents AS c"
            " LEFT JOIN content_header AS h ON h.id = c.id"
        )
    else:
        sql = "SELECT id, header, substring(raw from 1 for header_len) FROM contents"
    out: dict[int, tuple[bytes | None, bytes]] = {}
    for cid, header, cut in env.rows(sql):
        assert isinstance(cid, int) and isinstance(cut, bytes)
        assert header is None or isinstance(header, bytes)
        out[cid] = (header, cut)
    return out


def assert_complete(env: Env) -> None:
    """Every contents row has its block stored, equal to its cut, but a long one."""
    for cid, (header, cut) in stored(env).items():
        if len(cut) > HEADER_ROW_MAX:
            assert header is None, cid
        else:
            assert header == cut, cid


def test_the_migrations_limit_is_header_row_max() -> None:
    """The 64 KiB written in both migrations is `store.api.HEADER_ROW_MAX`."""
    (sqlite_file,) = [m for m in sqlite_migrate.available() if "content_header" in m.name]
    (pg_file,) = [m for m in pg_migrate.available() if "content_header" in m.name]
    for text in ("\n".join(sqlite_file.statements), pg_file.script):
        limits = set(re.findall(r"header_len <= (\d+)", text))
        assert limits == {str(HEADER_ROW_MAX)}


async def test_every_way_in_stores_the_block(env: Env, tmp_path: Path) -> None:
    store = await env.open()
    bob: User = await store.create_user("bob", "pw")
    await store.create_mailbox(bob.id, "Other", ORIGIN)
    spooled = tmp_path / "spooled.eml"
    spooled.write_bytes(message("spooled", body="x" * 200_000))
    await store.append(
        bob.id,
        "INBOX",
        [new("one"), NewMessage(LONG), NewMessage(spooled), new("four")],
        ORIGIN,
    )
    box = await store.get_mailbox(bob.id, "INBOX")
    await store.copy_messages(box.id, [1, 3], bob.id, "Other", ORIGIN)
    await store.replace(box.id, 4, bob.id, "INBOX", new("replacement"), ORIGIN)
    blocks = stored(env)
    assert len(blocks) == 4  # the copies share their contents; REPLACE removed one
    assert_complete(env)
    assert sum(h is None for h, _ in blocks.values()) == 1  # LONG's
    assert any(cut.startswith(b"From: ") and len(cut) > 100 for _, cut in blocks.values())

    # FETCH reads them (fetch_plain from the block, or from the message when too long).
    records = await store.fetch(box.id, [1, 2, 3, 5], content=True, header=True)
    assert [r.uid for r in records] == [1, 2, 3, 5]
    for r in records:
        assert r.content is not None and r.header is not None
        assert r.content.startswith(r.header) and r.header.endswith(b"\r\n\r\n")
    rows = await store.fetch_plain(box.id, [1, 2, 3, 5], ("header", "size"))
    assert rows == [
        (r.uid, r.header if r.uid != 2 else None, len(r.content or b"")) for r in records
    ]
    other = await store.get_mailbox(bob.id, "Other")
    copies = await store.fetch_plain(other.id, [1, 2], ("header",))
    assert copies == [(1, records[0].header), (2, records[2].header)]

    # The rows go with their last message.
    await store.store_flags(box.id, [1, 2, 3, 5], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(box.id, ORIGIN)
    assert len(stored(env)) == 2  # the copies' contents
    assert_complete(env)
    if env.backend == "sqlite":
        orphans = "SELECT count(*) FROM content_header WHERE id NOT IN (SELECT id FROM contents)"
        assert env.rows(orphans) == [(0,)]


def _sqlite_schema(db: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    return {(str(n), str(s)) for n, s in rows}


async def test_the_migration_fills_a_store_made_before_it(env: Env) -> None:
    """A store made at the schema before the migration (its objects dropped again, checked
    equal to a fresh database at that version) gets every block on its next open."""
    store = await env.open()
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [new("a"), NewMessage(LONG), new("c")], ORIGIN)
    await store.close()
    env.stores.remove(store)
    if env.backend == "sqlite":
        shipped = sqlite_migrate.available()
        before = next(i for i, m in enumerate(shipped) if "content_header" in m.name)
        with env.db() as db:
            db.execute("DROP TRIGGER content_header_gone")  # triggers on contents
            db.execute("DROP TRIGGER content_header_in")
            db.execute("DROP TABLE content_header")
            db.execute(f"PRAGMA user_version = {before}")
            rewound = _sqlite_schema(db)
            assert db.execute("SELECT count(*) FROM contents").fetchone() == (3,)
        fresh = sqlite3.connect(":memory:")
        for migration in shipped[:before]:
            for statement in migration.statements:
                fresh.execute(statement)
        assert rewound == _sqlite_schema(fresh)
        fresh.close()
    else:
        assert env.dsn is not None
        conn = await asyncpg.connect(env.dsn)
        try:
            (version,) = [m.version for m in pg_migrate.available() if "content_header" in m.name]
            await conn.execute("ALTER TABLE contents DROP COLUMN header")
            await conn.execute("DELETE FROM schema_version WHERE version >= $1", version)
        finally:
            await conn.close()
    again = await env.open()
    assert_complete(env)
    assert sum(h is not None for h, _ in stored(env).values()) == 2
    box = await again.get_mailbox(bob.id, "INBOX")
    rows = await again.fetch_plain(box.id, [1, 2, 3], ("header",))
    assert [r[1][:6] if r[1] else None for r in rows] == [b"From: ", None, b"From: "]
