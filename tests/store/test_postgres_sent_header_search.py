"""SENTBEFORE/SENTON/SENTSINCE and ``HEADER name ""`` on PostgreSQL go through an index (the
(mailbox_id, sent) index of messages.sent, the trigram index of content_text: migration
0008 and store/postgres/trigram.py), not a read of every message, and answer what the SQLite
store answers for the same messages (RFC 3501 §6.4.4: the Date header's date "disregarding
time and timezone"; HEADER with an empty string matches every message with that field).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from store.api import Criterion, NewMessage
from store.postgres import search, trigram
from store.postgres.store import PostgresStore
from store.postgres.trigram import candidates_sql, pattern
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, SCRYPT_N
from tests.store.test_postgres_trigram import plan_nodes, prose

BULK = 3000
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
async def pg(dsn: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(dsn, lambda changes: None, scrypt_n=SCRYPT_N)
    yield opened
    await opened.close()


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "s.sqlite3", lambda changes: None, scrypt_n=SCRYPT_N)
    yield opened
    await opened.close()


def mail(date: str | None, extra: str = "", body: str = "hello") -> NewMessage:
    head = "From: a@example.org\r\nSubject: s\r\n"
    if date is not None:
        head += f"Date: {date}\r\n"
    return NewMessage(f"{head}{extra}\r\n{body}\r\n".encode())


#: (Date header, the date SENT* compares), and what else the message carries.
SAMPLES = [
    mail("Mon, 01 Jan 2024 10:00:00 +0000"),  # 1: 2024-01-01
    mail("Mon, 01 Jan 2024 23:30:00 -0500"),  # 2: 2024-01-01 in its own zone (UTC: Jan 2)
    mail("Tue, 02 Jan 2024 00:30:00 +0900"),  # 3: 2024-01-02 in its own zone (UTC: Jan 1)
    mail(None),  # 4: no Date: no SENT* key matches it
    mail("not a date at all"),  # 5: no valid Date
    mail("Fri, 15 Mar 2024 08:00:00 +0100", "X-Custom: yes\r\n"),  # 6: has X-Custom
    mail("Fri, 15 Mar 2024 08:00:00 +0100", body="X-Custom: only in the body"),  # 7
    mail("Sat, 16 Mar 2024 08:00:00 +0100", "x-custom:\r\n"),  # 8: empty X-Custom field
    mail("Sat, 16 Mar 2024 08:00:00 +0100", "X-Custom-Longer: no\r\n"),  # 9: another field
]

CRITERIA: list[tuple[Criterion, list[int]]] = [
    (Criterion("SENTON", dt.date(2024, 1, 1)), [1, 2]),
    (Criterion("SENTON", dt.date(2024, 1, 2)), [3]),
    (Criterion("SENTBEFORE", dt.date(2024, 1, 2)), [1, 2]),
    (Criterion("SENTSINCE", dt.date(2024, 3, 15)), [6, 7, 8, 9]),
    (Criterion("NOT", children=(Criterion("SENTSINCE", dt.date(2024, 1, 2)),)), [1, 2, 4, 5]),
    (Criterion("NOT", children=(Criterion("SENTBEFORE", dt.date(2030, 1, 1)),)), [4, 5]),
    (Criterion("HEADER", "", header="X-Custom"), [6, 8]),
    (Criterion("HEADER", "", header="x-custom-longer"), [9]),
    (
        Criterion("NOT", children=(Criterion("HEADER", "", header="X-CUSTOM"),)),
        [1, 2, 3, 4, 5, 7, 9],
    ),
    (Criterion("HEADER", "", header="Date"), [1, 2, 3, 5, 6, 7, 8, 9]),
    (
        Criterion(
            "AND",
            children=(
                Criterion("SENTON", dt.date(2024, 3, 16)),
                Criterion("HEADER", "", header="X-Custom"),
            ),
        ),
        [8],
    ),
]


async def test_sent_and_header_presence_answer_as_sqlite_does(
    pg: PostgresStore, lite: SqliteStore, dsn: str
) -> None:
    boxes = []
    for store in (pg, lite):
        user = await store.create_user("bob", "pw")
        await store.append(user.id, "INBOX", SAMPLES, ORIGIN)
        boxes.append((await store.get_mailbox(user.id, "INBOX")).id)
    for criterion, expected in CRITERIA:
        on_pg = await pg.search(boxes[0], criterion)
        on_lite = await lite.search(boxes[1], criterion)
        assert on_pg == on_lite == expected, criterion
    # Rows stored before messages.sent existed (NULL) are decided by reading them, as before.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE messages SET sent = NULL WHERE uid IN (2, 4, 6)")
    finally:
        await conn.close()
    for criterion, expected in CRITERIA:
        assert await pg.search(boxes[0], criterion) == expected, criterion


async def test_copies_keep_the_sent_date(pg: PostgresStore) -> None:
    user = await pg.create_user("bob", "pw")
    await pg.append(user.id, "INBOX", SAMPLES[:3], ORIGIN)
    inbox = await pg.get_mailbox(user.id, "INBOX")
    await pg.copy_messages(inbox.id, [1, 2, 3], user.id, "Archive", ORIGIN)
    archive = await pg.get_mailbox(user.id, "Archive")
    assert await pg.search(archive.id, Criterion("SENTON", dt.date(2024, 1, 1))) == [1, 2]


async def explain(dsn: str, sql: str, *params: object) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE content_text, messages")  # as autovacuum would
        [row] = await conn.fetch("EXPLAIN (FORMAT JSON) " + sql, *params)
        return plan_nodes(json.loads(row[0]))
    finally:
        await conn.close()


async def test_a_larger_mailbox_is_searched_through_the_indexes(
    pg: PostgresStore, dsn: str
) -> None:
    user = await pg.create_user("bob", "pw")
    start = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
    for first in range(0, BULK, 250):
        await pg.append(
            user.id,
            "INBOX",
            [
                mail(
                    (start + dt.timedelta(days=i)).strftime("%a, %d %b %Y %H:%M:%S +0000"),
                    body=prose(i),
                )
                for i in range(first, first + 250)
            ],
            ORIGIN,
        )
    await pg.append(user.id, "INBOX", [mail(None, "X-Rare-Field: 1\r\n")], ORIGIN)
    box = await pg.get_mailbox(user.id, "INBOX")
    day = (start + dt.timedelta(days=1234)).date()
    compiled = search.compile_criterion(Criterion("SENTON", day), NOW, {})
    sql = (
        "SELECT m.uid FROM messages AS m WHERE m.mailbox_id = $1 AND ("  # noqa: S608
        + compiled.sql
        + ") ORDER BY m.uid"
    )
    assert "messages_sent" in await explain(dsn, sql, box.id, *compiled.params)
    assert await pg.search(box.id, Criterion("SENTON", day)) == [1235]
    since = (start + dt.timedelta(days=BULK - 3)).date()
    assert await pg.search(box.id, Criterion("SENTSINCE", since)) == [BULK - 2, BULK - 1, BULK]
    assert "content_text_trgm" in await explain(
        dsn, candidates_sql(1), box.id, pattern("X-Rare-Field")
    )
    header = Criterion("HEADER", "", header="X-Rare-Field")
    assert trigram.indexed(header)  # search asks the index, as explained above
    assert await pg.search(box.id, header) == [BULK + 1]
