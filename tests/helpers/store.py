"""For store tests: a real SQLite file in tmp_path or a fresh database on a throwaway
PostgreSQL cluster (tests/helpers/pg.py) (`Env`), a settable clock, the published changes
collected in a list, and helpers that recompute what the store keeps as counters, in either
backend. The fixtures are in tests/store/conftest.py."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.api import NewMessage
from store.changes import Change, Origin, from_json
from store.sqlite import SqliteStore
from tests.helpers.pg import run_sync

ORIGIN = Origin(session="s1", user="bob", service="imap", client="127.0.0.1:1234")
SCRYPT_N = 16  # for speed and determinism; production uses 2**14
START = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@dataclass
class Clock:
    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


async def _pg_rows(dsn: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


@dataclass
class Env:
    path: Path
    clock: Clock
    published: list[Change] = field(default_factory=list)
    stores: list[Any] = field(default_factory=list)
    #: The PostgreSQL database of this test (None: SQLite at ``path``).
    dsn: str | None = None

    @property
    def backend(self) -> str:
        return "sqlite" if self.dsn is None else "postgres"

    def publish(self, changes: Sequence[Change]) -> None:
        self.published.extend(changes)

    async def open(
        self, publish: Callable[[Sequence[Change]], None] | None = None, **kwargs: object
    ) -> Any:
        """Open the test's store (another handle on the same one when called again);
        ``publish`` replaces `Env.publish`."""
        publish = publish or self.publish
        if self.dsn is not None:
            from store.postgres.store import PostgresStore

            store: Any = await PostgresStore.open(
                self.dsn,
                publish,
                scrypt_n=SCRYPT_N,
                clock=self.clock,
                **kwargs,  # type: ignore[arg-type]
            )
        else:
            store = await SqliteStore.open(
                self.path,
                publish,
                scrypt_n=SCRYPT_N,
                clock=self.clock,
                **kwargs,  # type: ignore[arg-type]
            )
        self.stores.append(store)
        return store

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Rows of a query on the test's database, in either backend (``?`` placeholders
        become ``$n`` for PostgreSQL)."""
        if self.dsn is None:
            with self.db() as db:
                return [tuple(r) for r in db.execute(sql, params).fetchall()]
        n = 0

        def dollar(_: object) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        dsn = self.dsn
        return run_sync(lambda: _pg_rows(dsn, re.sub(r"\?", dollar, sql), *params))

    def take(self) -> list[Change]:
        """The changes published since the last take."""
        out, self.published[:] = list(self.published), []
        return out

    def db(self) -> sqlite3.Connection:
        assert self.dsn is None, "env.db() is the SQLite file: mark the test sqlite_only"
        return sqlite3.connect(self.path)

    def logged(self) -> list[Change]:
        rows = self.rows("SELECT kind, seq, payload FROM change_log ORDER BY seq")
        return [
            from_json(str(kind), int(seq), str(payload))  # type: ignore[call-overload]
            for kind, seq, payload in rows
        ]

    def check_counters(self) -> None:
        """Every mailbox's counters equal a COUNT(*) recomputation; contents.refs too."""
        if self.dsn is not None:
            self._check_counters_pg()
            return
        with self.db() as db:
            for row in db.execute(
                "SELECT id, name, messages, unseen, size, deleted FROM mailboxes"
            ).fetchall():
                mid = row[0]
                counted = db.execute(
                    "SELECT count(*), coalesce(sum(seen = 0), 0), coalesce(sum(size), 0),"
                    " coalesce(sum(deleted), 0) FROM messages WHERE mailbox_id = ?",
                    (mid,),
                ).fetchone()
                assert tuple(row[2:]) == tuple(counted), row[1]
                flags = db.execute(
                    "SELECT flags, seen, deleted FROM messages WHERE mailbox_id = ?", (mid,)
                ).fetchall()
                for text, seen, deleted in flags:
                    assert seen == ("\\Seen" in text.split())
                    assert deleted == ("\\Deleted" in text.split())
            bad = db.execute(
                "SELECT c.id, c.refs, (SELECT count(*) FROM messages m WHERE m.content_id = c.id)"
                " FROM contents c"
            ).fetchall()
            assert all(refs == n and n > 0 for _, refs, n in bad), bad
            orphans = db.execute(
                "SELECT count(*) FROM messages WHERE content_id NOT IN (SELECT id FROM contents)"
            ).fetchone()
            assert orphans == (0,)

    def _check_counters_pg(self) -> None:
        """The PostgreSQL twin: counters against a recount; every contents row used, every
        message's contents present (a foreign key too), flags and seen/deleted agree."""
        bad = self.rows(
            "SELECT m.name FROM mailboxes m LEFT JOIN LATERAL (SELECT count(*) AS n,"
            " count(*) FILTER (WHERE NOT seen) AS u, coalesce(sum(size), 0) AS s,"
            " count(*) FILTER (WHERE deleted) AS d FROM messages x WHERE x.mailbox_id = m.id)"
            " c ON true WHERE (m.messages, m.unseen, m.size, m.deleted) != (c.n, c.u, c.s, c.d)"
        )
        assert bad == [], bad
        flags = self.rows("SELECT flags, seen, deleted FROM messages")
        for text, seen, deleted in flags:
            assert seen == ("\\Seen" in str(text).split())
            assert deleted == ("\\Deleted" in str(text).split())
        unused = self.rows(
            "SELECT c.id FROM contents c WHERE NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.content_id = c.id)"
        )
        assert unused == [], unused


def message(
    subject: str = "Hello",
    body: str = "Body text\r\n",
    *,
    sender: str = "Alice <alice@example.org>",
    to: str = "Bob <bob@example.org>",
    cc: str | None = None,
    bcc: str | None = None,
    date: str = "Fri, 01 Mar 2024 10:00:00 +0100",
    message_id: str | None = "<m1@example.org>",
    extra: str = "",
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if cc:
        lines.append(f"Cc: {cc}")
    if bcc:
        lines.append(f"Bcc: {bcc}")
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def new(
    subject: str = "Hello",
    flags: tuple[str, ...] = (),
    when: dt.datetime | None = None,
    **kwargs: str,
) -> NewMessage:
    return NewMessage(message(subject, **kwargs), flags, when)


MakeMessage = Callable[..., NewMessage]
