"""SEARCH's substring keys on PostgreSQL go through the pg_trgm index (store/postgres/trigram.py,
migrations/0007_trigram.sql): the plan uses the index on a larger mailbox, the answers are
TextMatcher's (the same as SQLite's), and a migration that cannot create what it needs says so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from store.api import Criterion, NewMessage
from store.postgres.migrate import Migration, MigrationFailed, migrate
from store.postgres.store import PostgresStore
from store.postgres.trigram import candidates_sql, pattern
from tests.helpers.pg import PgCluster
from tests.helpers.store import ORIGIN, SCRYPT_N

MESSAGES = 3000


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    yield opened
    await opened.close()


def mail(i: int, subject: str, body: str) -> NewMessage:
    return NewMessage(
        f"From: sender{i}@example.org\r\nTo: rcpt@example.org\r\nSubject: {subject}\r\n\r\n"
        f"{body}\r\n".encode()
    )


def prose(i: int) -> str:
    """About 1.5 KB of varied words (a mailbox of real mail, not one repeated line)."""
    words = [f"w{(i * 7919 + k * 104729) % 50021:x}" for k in range(200)]
    return " ".join(words)


def plan_nodes(plan: object) -> list[str]:
    """Every index name in an EXPLAIN (FORMAT JSON) plan."""
    out: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "Index Name" in node:
                out.append(str(node["Index Name"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


async def test_text_search_uses_the_trigram_index_on_a_larger_mailbox(
    store: PostgresStore, dsn: str
) -> None:
    user = await store.create_user("bob", "pw")
    for start in range(0, MESSAGES, 250):
        await store.append(
            user.id,
            "INBOX",
            [
                mail(i, f"report number {i}", f"monthly report {i}: " + prose(i))
                for i in range(start, start + 250)
            ],
            ORIGIN,
        )
    needle = "=?utf-8?q?Caf=C3=A9_Zebra?="  # decoded and case-folded: "café zebra"
    await store.append(
        user.id, "INBOX", [mail(MESSAGES, needle, "the QUOKKA sighting, 100% true")], ORIGIN
    )
    box = await store.get_mailbox(user.id, "INBOX")
    conn = await asyncpg.connect(dsn)
    try:
        # As autovacuum does on a live database: statistics, and GIN's pending list merged.
        await conn.execute("VACUUM ANALYZE content_text, messages")
        [row] = await conn.fetch(
            "EXPLAIN (FORMAT JSON) " + candidates_sql(2),
            box.id,
            pattern("Quokka"),
            pattern("Sighting"),
        )
        indexes = plan_nodes(json.loads(row[0]))
    finally:
        await conn.close()
    assert "content_text_trgm" in indexes, indexes
    last = MESSAGES + 1
    assert await store.search(box.id, Criterion("BODY", "quokka SIGHTING")) == [last]
    assert await store.search(box.id, Criterion("SUBJECT", "CAFÉ zeb")) == [last]
    assert await store.search(box.id, Criterion("TEXT", "100% TRUE")) == [last]
    assert await store.search(box.id, Criterion("TEXT", "100_")) == []  # LIKE's _ escaped
    assert await store.search(box.id, Criterion("FROM", "sender3000@")) == [last]
    assert await store.search(box.id, Criterion("HEADER", "caf", header="Subject")) == [last]
    hits = await store.search(box.id, Criterion("BODY", "report"))
    assert len(hits) == MESSAGES


async def test_a_migration_lacking_its_extension_fails_naming_it(pg_cluster: PgCluster) -> None:
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute('CREATE DATABASE "empty_for_migration" TEMPLATE template0')
        conn = await asyncpg.connect(pg_cluster.dsn("empty_for_migration"))
        try:
            bad = Migration(1, "0001_needs.sql", "CREATE EXTENSION pg_trgm_not_installed_here;")
            with pytest.raises(
                MigrationFailed, match=r"(?s)0001_needs\.sql failed: .*needs the pg_trgm extension"
            ):
                await migrate(conn, [bad])
            # One transaction: nothing of it applied, not even the version table.
            assert await conn.fetchval("SELECT to_regclass('schema_version')") is None
        finally:
            await conn.close()
    finally:
        await admin.execute('DROP DATABASE "empty_for_migration" WITH (FORCE)')
        await admin.close()


async def test_pieces_narrow_and_textmatcher_decides_also_on_rows_of_the_whole_text(
    store: PostgresStore, dsn: str
) -> None:
    """content_text holds each piece once (textsearch.index_text): a needle of several
    words is asked as one LIKE per word; a message with the words apart is a candidate that
    TextMatcher refuses, one with the phrase is found. Rows written before migration 0012
    hold the whole text: found by the same query."""
    user = await store.create_user("bob", "pw")
    await store.append(
        user.id,
        "INBOX",
        [
            mail(1, "apart", "red fox here. and then: the quick, jumping red fox again"),
            mail(2, "phrase", "the quick  red\r\n fox jumps, the quick red fox"),
            mail(3, "neither", "a slow brown dog"),
        ],
        ORIGIN,
    )
    box = await store.get_mailbox(user.id, "INBOX")
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval(
            "SELECT t.text FROM content_text t JOIN messages m ON m.content_id = t.id"
            " WHERE m.mailbox_id = $1 AND m.uid = 2",
            box.id,
        )
        assert stored.split().count("fox") == 1 and stored.split().count("quick") == 1
        assert await store.search(box.id, Criterion("BODY", "QUICK red")) == [2]
        assert await store.search(box.id, Criterion("TEXT", "fox jumps,")) == [2]
        assert await store.search(box.id, Criterion("BODY", "red fox")) == [1, 2]
        assert await store.search(box.id, Criterion("BODY", "slow  brown")) == []
        assert await store.search(box.id, Criterion("BODY", "  ")) == [2]  # every one read
        # Message 3 as a row of before 0012: its whole text, repeats and all.
        await conn.execute(
            "UPDATE content_text t SET text = 'subject: neither\na slow brown dog, slow brown'"
            " FROM messages m WHERE m.content_id = t.id AND m.mailbox_id = $1 AND m.uid = 3",
            box.id,
        )
        assert await store.search(box.id, Criterion("BODY", "slow brown")) == [3]
        assert await store.search(box.id, Criterion("SUBJECT", "neith")) == [3]
    finally:
        await conn.close()
