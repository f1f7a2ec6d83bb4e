"""For store tests: a real SQLite file in tmp_path (`Env`), a settable clock, the published
changes collected in a list, and helpers that recompute what the store keeps as counters.
The fixtures are in tests/store/conftest.py."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from store.api import NewMessage
from store.changes import Change, Origin, from_json
from store.sqlite import SqliteStore

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


@dataclass
class Env:
    path: Path
    clock: Clock
    published: list[Change] = field(default_factory=list)
    stores: list[SqliteStore] = field(default_factory=list)

    def publish(self, changes: Sequence[Change]) -> None:
        self.published.extend(changes)

    async def open(self, **kwargs: object) -> SqliteStore:
        store = await SqliteStore.open(
            self.path, self.publish, scrypt_n=SCRYPT_N, clock=self.clock, **kwargs  # type: ignore[arg-type]
        )
        self.stores.append(store)
        return store

    def take(self) -> list[Change]:
        """The changes published since the last take."""
        out, self.published[:] = list(self.published), []
        return out

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def logged(self) -> list[Change]:
        with self.db() as db:
            rows = db.execute("SELECT kind, seq, payload FROM change_log ORDER BY seq").fetchall()
        return [from_json(kind, seq, payload) for kind, seq, payload in rows]

    def check_counters(self) -> None:
        """Every mailbox's counters equal a COUNT(*) recomputation; contents.refs too."""
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
    subject: str = "Hello", flags: tuple[str, ...] = (), when: dt.datetime | None = None,
    **kwargs: str,
) -> NewMessage:
    return NewMessage(message(subject, **kwargs), flags, when)


MakeMessage = Callable[..., NewMessage]
