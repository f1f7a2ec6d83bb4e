"""`imapd store copy --from DATA_DIR --to postgresql://...` (issue 18, "Moving over").

The source is a store made by real traffic: a server on SQLite, driven by imaplib (APPEND,
COPY, STORE, EXPUNGE, SETACL, SETMETADATA, SUBSCRIBE, RENAME, DELETE, XAPPLEPUSHSERVICE,
GENURLAUTH) and the store calls the admin CLI makes (quota, expiry, an event consumer's
cursor), then stopped. The copy runs as the real command into a throwaway PostgreSQL
database; then every copied table is compared row by row and field by field with the SQLite
file, and the PostgreSQL store itself is opened on the copy: the same password logs in, and
the next change continues the change log's seqs, ids and UIDVALIDITYs without reusing one.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from store.changes import Change, Origin
from store.errors import AuthFailed
from store.postgres.importer import GAP_KIND, NOT_COPIED, SQLITE_ONLY, TABLES, Table
from store.postgres.store import PostgresStore
from store.quota import Limits
from tests.conftest import ServerThread, make_config
from tests.e2e.test_postgres_store import Serve
from tests.helpers.pg import PgCluster  # the pg_cluster fixture: tests/conftest.py
from tests.helpers.server import PASSWORD, RunningServer
from tests.store.calendar_data import ics, valarm, vevent
from tests.store.calendar_data import message as cal_message

TOPIC = "com.apple.mail.XServer.0123abcd"
REGISTER = (
    "aps-version 2 aps-account-id ACCOUNT-1 aps-device-token 2918390218931890821908309283"
    ' aps-subtopic com.apple.mobilemail mailboxes (INBOX "Work")'
)
imaplib.Commands.setdefault("XAPPLEPUSHSERVICE", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))


def message(i: int) -> bytes:
    return (
        f"From: sender{i}@example.org\r\nTo: alice@example.org\r\nSubject: message {i}\r\n"
        f"Message-ID: <m{i}@example.org>\r\n\r\nbody {i}\r\n"
    ).encode()


def ok(result: tuple[str, Any]) -> Any:
    typ, data = result
    assert typ == "OK", data
    return data


def make_traffic(running: RunningServer) -> None:
    store = running.server.store
    running.add_user("alice")
    running.add_user("bob")
    running.call(store.create_user("admin", PASSWORD, admin=True))
    running.call(store.set_quota("alice", Limits(storage=50_000, messages=500)))
    c = imaplib.IMAP4(running.host, running.port, timeout=10)
    c.login("alice", PASSWORD)
    for name in ("Work", "Work/Sub", "Old"):
        ok(c.create(name))
    ok(c.subscribe("Work"))
    ok(c.subscribe("Work/Sub"))
    when = imaplib.Time2Internaldate(time.time() - 86400)
    for i in range(8):
        flags = "(\\Flagged $Label1)" if i % 3 == 0 else ""
        ok(c.append("INBOX", flags, when, message(i)))
    ok(c.select("INBOX"))  # claims \Recent
    ok(c.store("1:2", "+FLAGS", "(\\Seen $Important)"))
    ok(c.copy("1:3", "Work"))  # the copies share their contents
    ok(c.store("4,6", "+FLAGS", "(\\Deleted)"))
    ok(c.expunge())
    ok(c.setacl("Work", "bob", "lrs"))
    ok(c.setacl("Work", "-anyone", "w"))
    both = '(/private/comment "mine" /shared/comment "ours")'
    ok(c._simple_command("SETMETADATA", "INBOX", both))
    ok(c._simple_command("SETMETADATA", '""', '(/private/comment "server private")'))
    ok(c.xatom("XAPPLEPUSHSERVICE", REGISTER))
    imaplib.Commands.setdefault("GENURLAUTH", ("AUTH", "SELECTED"))
    rump = '"imap://alice@localhost/INBOX/;UID=1;URLAUTH=authuser"'
    ok(c._simple_command("GENURLAUTH", rump, "INTERNAL"))  # makes INBOX's URLAUTH key
    ok(c.create("Calendar"))  # a calendar (Kolab folder type) with an alarm to come
    kolab = '(/shared/vendor/kolab/folder-type "event")'
    ok(c._simple_command("SETMETADATA", "Calendar", kolab))
    alarm = valarm("TRIGGER:-PT15M", action="DISPLAY")
    event = vevent("DTSTART:20300101T090000Z", "DURATION:PT1H", alarms=(alarm,))
    ok(c.append("Calendar", "", when, cal_message(ics(event))))
    ok(c.rename("Old", "Older"))
    ok(c.select("Work"))
    ok(c.store("2", "+FLAGS", "(\\Answered)"))
    ok(c.create("Gone"))  # the newest mailbox id, then deleted: not to be reused
    ok(c.delete("Gone"))
    c.logout()
    admin = imaplib.IMAP4(running.host, running.port, timeout=10)
    admin.login("admin", PASSWORD)
    ok(admin._simple_command("SETMETADATA", '""', '(/shared/comment "the server")'))
    admin.logout()
    alice = running.call(store.authenticate("alice", PASSWORD))
    running.call(store.set_retention(alice.id, "Work", 30))
    running.call(store.set_event_cursor("notifysocket", 3))


def copy_cli(data_dir: Path, dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "imapd",
            "store",
            "copy",
            "--from",
            str(data_dir),
            "--to",
            dsn,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


MAILBOXES = ("INBOX", "Work", "Work/Sub", "Older", "Calendar")
TEXT_SEARCHES = (("BODY", "body 1"), ("SUBJECT", "message 2"), ("TEXT", "sender7@"))


def client_view(host: str, port: int) -> dict[str, Any]:
    """What a resynchronising client compares: per mailbox UIDVALIDITY, UIDNEXT,
    HIGHESTMODSEQ, MESSAGES, and every message's UID, MODSEQ and FLAGS."""
    c = imaplib.IMAP4(host, port, timeout=10)
    c.login("alice", PASSWORD)
    view: dict[str, Any] = {}
    try:
        for box in MAILBOXES:
            items = "(UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES)"
            (status,) = ok(c.status(f'"{box}"', items))
            ok(c.select(f'"{box}"', readonly=True))
            typ, fetched = c.uid("FETCH", "1:*", "(MODSEQ FLAGS)")
            assert typ == "OK", fetched
            lines = sorted(x.decode() for x in fetched if isinstance(x, bytes))
            # Text searches: on PostgreSQL they go through the trigram index's content_text.
            found = [ok(c.uid("SEARCH", key, f'"{v}"')) for key, v in TEXT_SEARCHES]
            view[box] = (status.decode().split(" ", 1)[1], lines, found)
    finally:
        c.logout()
    return view


@dataclass
class Source:
    data_dir: Path
    view: dict[str, Any]


@pytest.fixture
def source(tmp_path: Path) -> Source:
    """A data directory holding a SQLite store made by real traffic, its server stopped, and
    what a client saw of it last."""
    thread = ServerThread(make_config(tmp_path, aps_topic=TOPIC))
    running = thread.start()
    try:
        make_traffic(running)
        view = client_view(running.host, running.port)
    finally:
        thread.stop()
    assert view["INBOX"][1] and view["Work"][1], view  # FETCH answered something to compare
    assert view["INBOX"][2] == [[b"2"], [b"3"], [b"8"]], view["INBOX"]  # and SEARCH
    return Source(tmp_path / "data", view)


def sqlite_rows(db: sqlite3.Connection, table: Table) -> list[tuple[Any, ...]]:
    rows = db.execute(table.select()).fetchall()
    return [
        tuple(table.convert[i](v) if i in table.convert else v for i, v in enumerate(row))
        for row in rows
    ]


async def pg_rows(conn: asyncpg.Connection, table: Table) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(table.select())
    return [tuple(r) for r in rows]


def no_publish(changes: Sequence[Change]) -> None:
    pass


async def test_copy_keeps_every_field_and_the_store_continues(
    source: Source, dsn: str, tmp_path: Path
) -> None:
    done = copy_cli(source.data_dir, dsn, "--progress-every", "0")
    assert done.returncode == 0, done.stderr
    assert "store copy: messages" in done.stderr  # progress on stderr
    assert "copied 4 users" in done.stdout, done.stdout  # '', alice, bob, admin

    db = sqlite3.connect(source.data_dir / "imapd.sqlite3")
    conn = await asyncpg.connect(dsn)
    try:
        for table in TABLES:
            want = sqlite_rows(db, table)
            got = await pg_rows(conn, table)
            assert got == want, table.name
        # The traffic reached every table, so the comparison above compared something.
        counts = {t.name: len(sqlite_rows(db, t)) for t in TABLES}
        assert all(counts.values()), counts
        # Copies share their contents in PostgreSQL too.
        shared = await conn.fetchval(
            "SELECT count(*) FROM messages m JOIN messages n ON n.content_id = m.content_id"
            " AND n.mailbox_id <> m.mailbox_id"
        )
        assert shared == 6  # 3 originals x 1 copy, both directions
        # Header blocks (issue 17): PostgreSQL computes its own (migration 0010), equal to
        # the SQLite side table's rows (migration 0015) and to the messages' first octets.
        headers = dict(db.execute("SELECT id, header FROM content_header").fetchall())
        got_headers = await conn.fetch(
            "SELECT id, header, substring(raw from 1 for header_len) AS cut FROM contents"
        )
        assert got_headers and len(got_headers) == len(headers)
        for row in got_headers:
            assert row["header"] == row["cut"] == headers[row["id"]], row["id"]
        (last_seq,) = db.execute("SELECT max(seq) FROM change_log").fetchone()
        (top_mailbox,) = db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'mailboxes'"
        ).fetchone()
        assert top_mailbox > db.execute("SELECT max(id) FROM mailboxes").fetchone()[0]
        (top_uv,) = db.execute("SELECT max(uidvalidity) FROM mailboxes").fetchone()
    finally:
        await conn.close()
        db.close()

    store = await PostgresStore.open(dsn, no_publish, scrypt_n=2)
    try:
        alice = await store.authenticate("alice", PASSWORD)  # the hash came along
        with pytest.raises(AuthFailed):
            await store.authenticate("alice", PASSWORD + "x")
        await store.create_mailbox(alice.id, "Fresh", Origin(service="cli"))
        assert await store.change_log_head() == last_seq + 1
        assert await store.event_cursor("notifysocket") == 3
    finally:
        await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT id, uidvalidity FROM mailboxes WHERE name = 'Fresh'")
        assert row["id"] == top_mailbox + 1  # the deleted "Gone"'s id is not reused
        assert row["uidvalidity"] > top_uv
    finally:
        await conn.close()

    # Served from PostgreSQL, a client finds what it saw on SQLite: nothing to resynchronise.
    server = Serve(tmp_path / "pg-instance", dsn)
    try:
        view = await asyncio.to_thread(client_view, "127.0.0.1", server.port)
        c = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        c.login("alice", PASSWORD)
        ok(c.append("INBOX", "", None, message(99)))
        c.logout()
    finally:
        server.stop()
    assert view == source.view
    # ... and the outbox continues: `events tail --from` the next seq shows the new changes.
    since = ["--from", str(last_seq + 1), "--data-dir", str(tmp_path / "tail"), "--store", dsn]
    tail = subprocess.run(
        [sys.executable, "-m", "imapd", "events", "tail", *since],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    seqs = [e["vnd.imapd.seq"] for e in events]
    assert seqs and seqs[0] == last_seq + 1, seqs  # "Fresh", made through the store above
    assert [e["event"] for e in events][-1] == "MessageAppend", events


async def test_a_target_that_is_not_empty_is_refused(source: Source, dsn: str) -> None:
    store = await PostgresStore.open(dsn, no_publish, scrypt_n=2)
    try:
        await store.create_user("someone", "pw")
    finally:
        await store.close()
    refused = copy_cli(source.data_dir, dsn)
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr and "users (1 rows)" in refused.stderr
    assert "Traceback" not in refused.stderr
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM mailboxes") > 0  # someone's own
        assert await conn.fetchval("SELECT count(*) FROM users WHERE name = 'alice'") == 0
    finally:
        await conn.close()


async def test_a_second_copy_is_refused_and_changes_nothing(source: Source, dsn: str) -> None:
    assert copy_cli(source.data_dir, dsn).returncode == 0
    conn = await asyncpg.connect(dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM messages")
        again = copy_cli(source.data_dir, dsn)
        assert again.returncode == 2 and "is not empty" in again.stderr, again.stderr
        assert await conn.fetchval("SELECT count(*) FROM messages") == before
    finally:
        await conn.close()


def test_a_running_server_keeps_its_store(tmp_path: Path) -> None:
    thread = ServerThread(make_config(tmp_path))
    thread.start()
    try:
        busy = copy_cli(tmp_path / "data", "postgresql://u:secret@127.0.0.1:1/db")
    finally:
        thread.stop()
    assert busy.returncode == 2
    assert "in use" in busy.stderr and "Traceback" not in busy.stderr


def test_an_unreachable_target_is_named_with_its_password_masked(source: Source) -> None:
    from tests.helpers.pg import free_port

    down = copy_cli(source.data_dir, f"postgresql://u:secret@127.0.0.1:{free_port()}/db")
    assert down.returncode == 2
    assert "cannot reach PostgreSQL at postgresql://u:***@127.0.0.1" in down.stderr
    assert "secret" not in down.stderr and "Traceback" not in down.stderr


async def test_a_restored_store_keeps_its_seq_gap(source: Source, dsn: str, tmp_path: Path) -> None:
    data_dir = source.data_dir

    # imapd restore continues the change log above the replaced store's seqs, leaving
    # sqlite_sequence ahead of the last row: the copy must not hand those seqs out again.
    def cli(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "imapd", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    cli("backup", str(tmp_path / "b.sqlite3"))
    cli("mailbox", "create", "alice", "After")
    cli("restore", str(tmp_path / "b.sqlite3"))
    db = sqlite3.connect(data_dir / "imapd.sqlite3")
    try:
        (top,) = db.execute("SELECT max(seq) FROM change_log").fetchone()
        (mark,) = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'change_log'").fetchone()
        cursors = db.execute("SELECT name, seq FROM event_cursors").fetchall()
    finally:
        db.close()
    assert mark > top
    done = copy_cli(data_dir, dsn)
    assert done.returncode == 0, done.stderr
    assert f"the next change is seq {mark + 1}" in done.stdout
    store = await PostgresStore.open(dsn, no_publish, scrypt_n=2)
    try:
        assert await store.change_log_head() == mark
        assert [(n, await store.event_cursor(n)) for n, _ in cursors] == cursors
        alice = await store.authenticate("alice", PASSWORD)
        await store.create_mailbox(alice.id, "Fresh", Origin(service="cli"))
        assert await store.change_log_head() == mark + 1
        kinds = [kind for _, kind, _ in await store.change_log(top, 10)]
        assert kinds == [GAP_KIND, "MailboxCreated"]  # readers step over the marker
    finally:
        await store.close()


async def test_every_table_of_both_schemas_is_accounted_for(pg_cluster: PgCluster) -> None:
    # A table added to either schema must be copied or said not to be (SQLITE_ONLY, NOT_COPIED).
    from store.sqlite.migrate import available

    db = sqlite3.connect(":memory:")
    for migration in available():
        for statement in migration.statements:
            db.execute(statement)
    sqlite_tables = {
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    db.close()
    conn = await asyncpg.connect(pg_cluster.dsn("imapd_template"))
    try:
        pg_tables = {
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()
    copied = {t.name for t in TABLES}
    derived = {t.derived[0] for t in TABLES if t.derived}
    assert pg_tables - {"schema_version"} == copied | derived | set(NOT_COPIED)
    assert sqlite_tables == copied | set(SQLITE_ONLY) | set(NOT_COPIED)
