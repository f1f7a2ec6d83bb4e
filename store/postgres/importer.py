"""Filling an empty PostgreSQL store from a SQLite one: the writing half of ``imapd store copy
--from DATA_DIR --to postgresql://...`` (store/pgcopy.py joins it to its source,
store/sqlite/snapshot.py; imapd/cli/storecopy.py; docs/postgresql.md "Moving over").

Written against both schemas directly (store/sqlite/migrations, store/postgres/migrations):
rows are copied with the ids they have, so everything that names an id (messages, ACL,
metadata, quota roots, push registrations) keeps pointing at the same thing, and so
clients resynchronise nothing: UIDVALIDITY, UIDNEXT, UIDs, per-message MODSEQ and
HIGHESTMODSEQ, flags and keywords, the \\Recent mark (``recent_uid``), the QRESYNC
``expunged`` rows, counters, password hashes (verbatim), subscriptions, ACLs, quota roots
and limits, METADATA (server and mailbox, /shared and /private), push registrations,
expiry (``retention_days``), contents (one row per shared contents, so copies stay shared)
and the change log with its seqs and the durable consumers' cursors (``event_cursors``),
so the next change gets the next seq and ``imapd events tail --from SEQ`` continues.

How:
- The source is one read-only snapshot of the SQLite store, locked against every other
  program and at this version's latest schema (store/sqlite/snapshot.py); `TABLES` are
  SELECTs valid on both schemas, run there and COPYed here.
- The target is migrated (store/postgres/migrate.py), then the whole copy is ONE
  transaction: every table is locked against writers first, then checked empty (the
  migration's own shared-namespace owner ``''`` aside, which is replaced by the source's),
  so a refused or failed copy leaves the target as it was.
- Rows stream in batches (`BATCH_ROWS` rows or `BATCH_BYTES` of data, whichever comes
  first) through COPY, so memory stays bounded however large the store; progress goes to
  ``progress`` (stderr in the CLI) every ``progress_every`` seconds.
- Identity sequences restart past the source's AUTOINCREMENT high-water marks
  (``sqlite_sequence``), so no id is ever reused; if the source's change-log sequence is
  ahead of its last row (a restored store: store/sqlite/backup.py), one marker row of kind
  `GAP_KIND` holds that seq (readers step over a kind they do not know), because the
  PostgreSQL store numbers the next change ``max(seq) + 1``.
- Before COMMIT the row count of every copied table is compared with the source's.

Also copied: the calendar index with its alarm state (no alarm fired twice or lost) and the
pre-rendered FETCH answers (``content_wire``), the previews (``content_preview``) and the
URLAUTH keys (``urlauth_keys``). Made while copying (`Table.derived`): the
trigram index's ``content_text`` of each contents row, as APPEND makes it. Not copied
(`SQLITE_ONLY`): the header search texts, which the PostgreSQL store does not keep, and the
SQLite file's own bookkeeping; nor the running processes' cluster tables (`NOT_COPIED`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from store import mime, textsearch
from store.errors import StoreError
from store.postgres.migrate import SchemaTooNew, migrate

__all__ = [
    "GAP_KIND",
    "NOT_COPIED",
    "SQLITE_ONLY",
    "TABLES",
    "CopyFailed",
    "CopyReport",
    "Source",
    "TargetNotEmpty",
    "TargetUnavailable",
    "import_store",
]

BATCH_ROWS = 1000
BATCH_BYTES = 8 << 20
#: change_log kind of the marker row that keeps a restored store's seq high-water mark.
GAP_KIND = "ChangeLogGap"


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (as store/open.py masks it)."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


class Source(Protocol):
    """The SQLite store as one read-only snapshot (store/sqlite/snapshot.py)."""

    def rows(self, sql: str, *args: Any) -> Iterator[tuple[Any, ...]]: ...

    def value(self, sql: str, *args: Any) -> Any: ...

    def sequence(self, table: str) -> int: ...


class TargetNotEmpty(StoreError):
    """The PostgreSQL database already holds a store."""


class TargetUnavailable(StoreError):
    """The PostgreSQL database cannot be reached, logged into or migrated."""


class CopyFailed(StoreError):
    """The copied rows do not add up (the transaction is rolled back)."""


def _bool(value: object) -> bool:
    return bool(value)


def _blob(value: object) -> bytes:
    if isinstance(value, str):  # SQLite's dynamic typing: a TEXT value in a BLOB column
        return value.encode()
    assert isinstance(value, bytes | bytearray | memoryview)
    return bytes(value)


def _content_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The content_text row of a contents row (id, header_len, message_id, structure, raw):
    what the PostgreSQL store's trigram index narrows SEARCH with (store/postgres/trigram.py),
    made from the stored structure as APPEND makes it from the parsed one."""
    return row[0], textsearch.index_text(row[4], mime.structure_from_json(row[3]))


def _sent(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(contents id, its messages' ``sent``) of a contents row, as APPEND makes it."""
    return row[0], textsearch.sent_date(row[4], mime.structure_from_json(row[3]))


@dataclass(frozen=True, slots=True)
class Table:
    """One table copied as is: the same name and these columns on both sides."""

    name: str
    columns: tuple[str, ...]
    order: str
    #: column index -> conversion from the SQLite value to the PostgreSQL one
    convert: dict[int, Callable[[Any], Any]] = field(default_factory=dict)
    #: an identity column whose sequence restarts past the source's high-water mark
    identity: str | None = None
    where: str = ""
    #: column whose size counts towards a batch's bytes
    big: int | None = None
    #: a PostgreSQL-only table made from each copied row: (its name, its columns, the
    #: function making its row from the copied one)
    derived: tuple[str, tuple[str, ...], Callable[[tuple[Any, ...]], tuple[Any, ...]]] | None = None

    def select(self) -> str:
        cols = ", ".join(f'"{c}"' for c in self.columns)
        return f"SELECT {cols} FROM {self.name}{self.where} ORDER BY {self.order}"

    def count(self) -> str:
        return f"SELECT count(*) FROM {self.name}{self.where}"


#: In dependency order (REFERENCES point backwards).
TABLES: tuple[Table, ...] = (
    Table(
        "users",
        ("id", "name", "password", "is_admin", "created"),
        "id",
        {3: _bool},
        identity="id",
    ),
    Table(
        "quota_roots",
        ("id", "user_id", "name", "storage", "messages"),
        "id",
        identity="id",
    ),
    Table(
        "mailboxes",
        (
            "id",
            "owner_id",
            "name",
            "uidvalidity",
            "uidnext",
            "highestmodseq",
            "recent_uid",
            "messages",
            "unseen",
            "size",
            "deleted",
            "special_use",
            "selectable",
            "retention_days",
            "created",
            "quota_root_id",
        ),
        "id",
        {12: _bool},
        identity="id",
    ),
    Table("calendar_mailboxes", ("mailbox_id",), "mailbox_id"),
    Table("subscriptions", ("user_id", "name"), "user_id, name"),
    Table(
        "contents",
        ("id", "header_len", "message_id", "structure", "raw"),
        "id",
        {4: _blob},
        identity="id",
        big=4,
        derived=("content_text", ("id", "text"), _content_text),
    ),
    # Pre-rendered FETCH answers: made by the same renderer (imapd/fetch_wire.py) for both.
    Table("content_wire", ("id", "wire"), "id", {1: _blob}, big=1),
    # RFC 8970 previews, made at APPEND (older contents get theirs at first FETCH PREVIEW).
    Table("content_preview", ("id", "preview"), "id"),
    Table(
        "messages",
        (
            "mailbox_id",
            "uid",
            "modseq",
            "seen",
            "deleted",
            "size",
            "internal_epoch",
            "internaldate",
            "savedate",
            "flags",
            "content_id",
        ),
        "mailbox_id, uid",
        {3: _bool, 4: _bool},
    ),
    # The alarm state (fired_through, next_alarm) as it is: no alarm is fired twice or lost.
    Table(
        "calendar_objects",
        ("mailbox_id", "uid", "fired_through", "next_alarm"),
        "mailbox_id, uid",
    ),
    Table("expunged", ("mailbox_id", "uid", "modseq"), "mailbox_id, uid"),
    Table(
        "metadata",
        ("mailbox_id", "user_id", "entry", "value"),
        "mailbox_id, user_id, entry",
        {3: _blob},
        big=3,
    ),
    Table("acl", ("mailbox_id", "identifier", "rights"), "mailbox_id, identifier"),
    # URLAUTH keys (RFC 4467): the same key keeps every URL already handed out valid.
    Table("urlauth_keys", ("user_id", "mailbox_id", "key"), "user_id, mailbox_id", {2: _blob}),
    Table(
        "aps_devices",
        (
            "user_id",
            "account_id",
            "device_token",
            "subtopic",
            "aps_version",
            "mailboxes",
            "registered",
        ),
        "user_id, account_id, device_token, subtopic",
    ),
    Table("change_log", ("seq", "kind", "user", "payload", "created"), "seq", big=3),
    Table("event_cursors", ("name", "seq"), "name"),
    # Of the SQLite meta keys only the UIDVALIDITY high-water mark means anything to the
    # PostgreSQL store (the others are the SQLite file's: backup_taken, restored, ...).
    Table("meta", ("key", "value"), "key", where=" WHERE key = 'uidvalidity'"),
)

#: Tables both stores have that are deliberately not copied, and why: the state of running
#: server processes (docs/workers.md), which a copy (made with no server running) must not
#: carry over.
NOT_COPIED: dict[str, str] = {
    "cluster_instances": "heartbeats of running processes",
    "cluster_sessions": "sessions of running processes",
    "cluster_leases": "event-sink leases of running processes",
    "cluster_kicks": "kick requests to running processes",
}

#: SQLite tables deliberately not copied, and why.
SQLITE_ONLY: dict[str, str] = {
    "content_search": "header search texts: the PostgreSQL store searches without them",
    "content_header": "header blocks: PostgreSQL computes them (contents.header, generated)",
    "sqlite_sequence": "AUTOINCREMENT marks: become the identity sequences' restart values",
}


@dataclass
class CopyReport:
    """What was copied: rows per table, bytes of message contents, the change log's last
    seq (the next change is numbered one more)."""

    rows: dict[str, int] = field(default_factory=dict)
    content_bytes: int = 0
    last_seq: int = 0
    gap_marker: bool = False


class _Progress:
    def __init__(self, out: Callable[[str], None] | None, every: float) -> None:
        self.out = out
        self.every = every
        self.last = time.monotonic()

    def tick(self, table: str, done: int, total: int, nbytes: int) -> None:
        now = time.monotonic()
        if self.out is None or now - self.last < self.every:
            return
        self.last = now
        self.out(
            f"store copy: {table} {done}/{total} rows"
            + (f", {nbytes / (1 << 20):.1f} MiB" if nbytes else "")
        )


def _batches(
    rows: Iterator[tuple[Any, ...]], table: Table
) -> Iterator[tuple[list[tuple[Any, ...]], int]]:
    """The rows converted for PostgreSQL, in batches of at most BATCH_ROWS rows or about
    BATCH_BYTES bytes of the big column; with each batch its bytes."""
    batch: list[tuple[Any, ...]] = []
    nbytes = 0
    for row in rows:
        if table.convert:
            row = tuple(table.convert[i](v) if i in table.convert else v for i, v in enumerate(row))
        batch.append(row)
        if table.big is not None and row[table.big] is not None:
            nbytes += len(row[table.big])
        if len(batch) >= BATCH_ROWS or nbytes >= BATCH_BYTES:
            yield batch, nbytes
            batch, nbytes = [], 0
    if batch:
        yield batch, nbytes


async def _check_empty(conn: asyncpg.Connection, url: str) -> None:
    found: list[str] = []
    for table in TABLES:
        extra = " WHERE name <> ''" if table.name == "users" else ""
        n = await conn.fetchval(f"SELECT count(*) FROM {table.name}{extra}")
        # (a derived table's rows cannot be there without the rows they are made from)
        if n:
            found.append(f"{table.name} ({n} rows)")
    if found:
        raise TargetNotEmpty(
            f"the PostgreSQL database at {mask_url(url)} is not empty: it has "
            + ", ".join(found)
            + "; store copy only fills an empty store (a new database)"
        )


async def _restart_identity(conn: asyncpg.Connection, table: Table, source: Source) -> None:
    assert table.identity is not None
    top_id = source.value(f"SELECT coalesce(max({table.identity}), 0) FROM {table.name}")
    mark = max(int(top_id), source.sequence(table.name))
    await conn.execute(
        "SELECT setval(pg_get_serial_sequence($1, $2), $3, false)",
        table.name,
        table.identity,
        mark + 1,
    )


async def import_store(
    source: Source,
    url: str,
    *,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 5.0,
    tables: Sequence[Table] = TABLES,
) -> CopyReport:
    """Copy ``source`` into the empty PostgreSQL store at ``url`` (the module's docstring).
    Raises TargetNotEmpty (nothing written), TargetUnavailable, StoreError (a schema newer
    than this imapd), CopyFailed and asyncpg's errors midway (rolled back)."""
    report = CopyReport()
    ticker = _Progress(progress, progress_every)
    conn = await _connect(url)
    try:
        async with conn.transaction():
            names = ", ".join(t.name for t in tables)
            await conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
            await _check_empty(conn, url)
            # The migration's owner of the shared namespace: the source has its own.
            await conn.execute("DELETE FROM users WHERE name = ''")
            # messages.sent (SENT*, store/postgres/search.py): the SQLite store has no such
            # column; made per contents row, set on the messages once they are copied.
            await conn.execute(
                "CREATE TEMP TABLE import_sent (id bigint PRIMARY KEY, sent text NOT NULL)"
                " ON COMMIT DROP"
            )
            for table in tables:
                total = int(source.value(table.count()))
                done = 0
                nbytes = 0
                for batch, size in _batches(source.rows(table.select()), table):
                    await conn.copy_records_to_table(
                        table.name, records=batch, columns=list(table.columns)
                    )
                    if table.derived is not None:
                        name, columns, make = table.derived
                        await conn.copy_records_to_table(
                            name, records=[make(row) for row in batch], columns=list(columns)
                        )
                    if table.name == "contents":
                        await conn.copy_records_to_table(
                            "import_sent", records=[_sent(row) for row in batch]
                        )
                    done += len(batch)
                    nbytes += size
                    ticker.tick(table.name, done, total, nbytes)
                report.rows[table.name] = done
                if table.name == "contents":
                    report.content_bytes = nbytes
                if table.identity is not None:
                    await _restart_identity(conn, table, source)
            await conn.execute(
                "UPDATE messages AS m SET sent = s.sent FROM import_sent AS s"
                " WHERE s.id = m.content_id"
            )
            report.last_seq, report.gap_marker = await _keep_seq(conn, source)
            await _verify(conn, tables, report)
    finally:
        await conn.close()
    return report


async def _connect(url: str) -> asyncpg.Connection:
    """A connection to ``url`` with the store's schema migrated, or TargetUnavailable."""
    try:
        conn = await asyncpg.connect(url)
    except (OSError, TimeoutError) as exc:
        raise TargetUnavailable(f"cannot reach PostgreSQL at {mask_url(url)}: {exc}") from exc
    except Exception as exc:
        if not type(exc).__module__.startswith("asyncpg"):  # refused login, no such database
            raise
        raise TargetUnavailable(f"cannot open PostgreSQL at {mask_url(url)}: {exc}") from exc
    try:
        await migrate(conn)
    except SchemaTooNew as exc:
        await conn.close()
        raise StoreError(str(exc)) from exc
    except BaseException:
        await conn.close()
        raise
    return conn


async def _keep_seq(conn: asyncpg.Connection, source: Source) -> tuple[int, bool]:
    """The last seq, and whether a marker row had to carry it (see the module)."""
    top = int(source.value("SELECT coalesce(max(seq), 0) FROM change_log"))
    mark = max(top, source.sequence("change_log"))
    if mark <= top:
        return top, False
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    await conn.execute(
        'INSERT INTO change_log (seq, kind, "user", payload, created)'
        " VALUES ($1, $2, NULL, $3, $4)",
        mark,
        GAP_KIND,
        '{"why": "imapd store copy: seqs up to here were used by the SQLite store"}',
        created,
    )
    return mark, True


async def _verify(conn: asyncpg.Connection, tables: Sequence[Table], report: CopyReport) -> None:
    for table in tables:
        extra = " WHERE kind <> $1" if table.name == "change_log" else ""
        args = (GAP_KIND,) if extra else ()
        names = [table.name] + ([table.derived[0]] if table.derived else [])
        for name in names:
            n = await conn.fetchval(f"SELECT count(*) FROM {name}{extra}", *args)
            if n != report.rows[table.name]:
                raise CopyFailed(
                    f"store copy: {name} has {n} rows in PostgreSQL after copying"
                    f" {report.rows[table.name]}; nothing was committed"
                )
