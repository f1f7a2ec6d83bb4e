"""SEARCH: every Criterion name the session may send, over SQL and Python text keys."""

from __future__ import annotations

import datetime as dt

import aiosqlite
import pytest

from store.api import Criterion, MailboxInfo, NewMessage, User
from store.mime import parse_message, structure_to_json
from store.sqlite import SqliteStore
from store.sqlite.migrate import available, migrate
from store.sqlite.search import STORED_KEYS, compile_criterion
from tests.helpers.store import ORIGIN, START, Clock, Env, message, new

BOTH_BACKENDS = True

C = Criterion
EST = dt.timezone(dt.timedelta(hours=-5))


@pytest.fixture
async def box(store: SqliteStore, env: Env, clock: Clock) -> MailboxInfo:
    """Four messages:
    1 seen+answered, 100 days old, "Quarterly report", from alice, Date 2024-01-10
    2 flagged+$Work, internaldate 2024-02-29 23:30 -05:00 (2024-03-01 UTC), encoded subject
    3 deleted+draft, a long body, Cc carol, Bcc dave, Date 2024-03-01 in +14:00
    4 no flags, appended a day later (later SAVEDATE)
    """
    bob: User = await store.create_user("bob", "pw")
    msgs = [
        NewMessage(
            message(
                "Quarterly report",
                "The numbers are up.\r\n",
                date="Wed, 10 Jan 2024 09:00:00 +0000",
            ),
            ("\\Seen", "\\Answered"),
            START - dt.timedelta(days=100),
        ),
        NewMessage(
            message(
                "=?utf-8?q?Caf=C3=A9_menu?=",
                "Croissants\r\n",
                sender="Bob <bob@example.net>",
                date="Thu, 29 Feb 2024 23:00:00 -0500",
                extra="X-Priority: 1",
            ),
            ("\\Flagged", "$Work"),
            dt.datetime(2024, 2, 29, 23, 30, tzinfo=EST),
        ),
        NewMessage(
            message(
                "Lunch",
                "x" * 2000 + "\r\nNeedle in the haystack\r\n",
                cc="Carol <carol@example.com>",
                bcc="dave@example.com",
                date="Sat, 02 Mar 2024 01:00:00 +1400",
            ),
            ("\\Deleted", "\\Draft"),
            START,
        ),
    ]
    await store.append(bob.id, "INBOX", msgs, ORIGIN)
    clock.advance(86400)
    await store.append(bob.id, "INBOX", [NewMessage(message("Later", "Plain\r\n"))], ORIGIN)
    return await store.get_mailbox(bob.id, "INBOX")


CASES: list[tuple[Criterion, list[int]]] = [
    (C("ALL"), [1, 2, 3, 4]),
    (C("AND"), [1, 2, 3, 4]),
    (C("SEEN"), [1]),
    (C("UNSEEN"), [2, 3, 4]),
    (C("ANSWERED"), [1]),
    (C("UNANSWERED"), [2, 3, 4]),
    (C("FLAGGED"), [2]),
    (C("UNFLAGGED"), [1, 3, 4]),
    (C("DELETED"), [3]),
    (C("UNDELETED"), [1, 2, 4]),
    (C("DRAFT"), [3]),
    (C("UNDRAFT"), [1, 2, 4]),
    (C("KEYWORD", "$work"), [2]),
    (C("UNKEYWORD", "$Work"), [1, 3, 4]),
    (C("KEYWORD", "$Wor"), []),
    # INTERNALDATE by its own date: message 2 is 2024-02-29 in its -05:00 offset.
    (C("ON", dt.date(2024, 2, 29)), [2]),
    (C("BEFORE", dt.date(2024, 3, 1)), [1, 2]),
    (C("SINCE", dt.date(2024, 3, 1)), [3, 4]),
    (C("ON", dt.date(2024, 3, 2)), [4]),
    (C("SAVEDON", dt.date(2024, 3, 1)), [1, 2, 3]),
    (C("SAVEDBEFORE", dt.date(2024, 3, 2)), [1, 2, 3]),
    (C("SAVEDSINCE", dt.date(2024, 3, 2)), [4]),
    (C("SAVEDATESUPPORTED"), [1, 2, 3, 4]),
    (C("OLDER", 86400 * 50), [1]),
    (C("YOUNGER", 86400 * 2), [2, 3, 4]),
    (C("LARGER", 1000), [3]),
    (C("SMALLER", 1000), [1, 2, 4]),
    (C("UIDS", ((1, 1), (3, 4))), [1, 3, 4]),
    (C("UIDS", ()), []),
    (C("UIDS", tuple((u, u) for u in range(1, 40, 2))), [1, 3]),  # many ranges: JSON form
    (C("MODSEQ", 3), [4]),
    (C("MODSEQ", 2), [1, 2, 3, 4]),
    (C("SUBJECT", "REPORT"), [1]),
    (C("SUBJECT", "café"), [2]),  # RFC 2047 decoded
    (C("FROM", "alice"), [1, 3, 4]),
    (C("FROM", "EXAMPLE.NET"), [2]),
    (C("TO", "bob@"), [1, 2, 3, 4]),
    (C("CC", "carol"), [3]),
    (C("BCC", "dave"), [3]),
    (C("HEADER", "1", header="X-Priority"), [2]),
    (C("HEADER", "", header="x-priority"), [2]),  # empty string: the field exists
    (C("HEADER", "", header="X-Absent"), []),
    (C("BODY", "needle IN"), [3]),
    (C("BODY", "Lunch"), []),  # a header word is not in the body
    (C("TEXT", "lunch"), [3]),
    (C("TEXT", "croissants"), [2]),
    (C("TEXT", "café"), [2]),
    (C("SENTON", dt.date(2024, 2, 29)), [2]),  # the Date header in its own zone
    (C("SENTBEFORE", dt.date(2024, 3, 1)), [1, 2]),
    (C("SENTSINCE", dt.date(2024, 3, 1)), [3, 4]),
    (C("NOT", children=(C("SEEN"),)), [2, 3, 4]),
    (C("OR", children=(C("SEEN"), C("FLAGGED"))), [1, 2]),
    (C("OR", children=(C("BODY", "numbers"), C("DRAFT"))), [1, 3]),
    (C("AND", children=(C("TEXT", "example"), C("UIDS", ((2, 3),)), C("UNDELETED"))), [2]),
    (C("NOT", children=(C("OR", children=(C("SUBJECT", "lunch"), C("LARGER", 500))),)), [1, 2, 4]),
]


@pytest.mark.parametrize(
    ("criterion", "expected"),
    CASES,
    ids=[f"{c.name}-{c.value or c.header or len(c.children)}" for c, _ in CASES],
)
async def test_search(
    store: SqliteStore, box: MailboxInfo, criterion: Criterion, expected: list[int]
) -> None:
    assert await store.search(box.id, criterion) == expected


async def test_search_modseq_after_store(store: SqliteStore, box: MailboxInfo) -> None:
    await store.store_flags(box.id, [1], "+", ["x"], ORIGIN)
    assert await store.search(box.id, C("MODSEQ", 3)) == [1, 4]
    assert await store.search(box.id, C("MODSEQ", 4)) == [1]


async def test_within_boundary_matches_both(store: SqliteStore, clock: Clock) -> None:
    """RFC 5032 §2: OLDER matches an INTERNALDATE "less recent than or equal to" now minus
    the interval, YOUNGER one "more recent than or equal to" it: at the target second both."""
    bob = await store.create_user("bob", "pw")
    await store.append(
        bob.id,
        "INBOX",
        [
            new("exact", when=clock.now - dt.timedelta(seconds=100)),
            new("before", when=clock.now - dt.timedelta(seconds=101)),
            new("after", when=clock.now - dt.timedelta(seconds=99)),
        ],
        ORIGIN,
    )
    box = await store.get_mailbox(bob.id, "INBOX")
    assert await store.search(box.id, C("OLDER", 100)) == [1, 2]
    assert await store.search(box.id, C("YOUNGER", 100)) == [1, 3]
    assert await store.search(box.id, C("NOT", children=(C("OLDER", 100),))) == [3]


async def test_attached_message_headers_are_body_text(store: SqliteStore) -> None:
    bob = await store.create_user("bob", "pw")
    inner = message("Quarterly figures", "Figures inside.\r\n", sender="Carol <c@example.org>")
    outer = (
        b"From: a@example.org\r\nSubject: Fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n"
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n"
    )
    await store.append(bob.id, "INBOX", [NewMessage(outer), NewMessage(message())], ORIGIN)
    box = await store.get_mailbox(bob.id, "INBOX")
    assert await store.search(box.id, C("TEXT", "quarterly")) == [1]
    assert await store.search(box.id, C("BODY", "carol")) == [1]
    assert await store.search(box.id, C("BODY", "figures inside")) == [1]
    assert await store.search(box.id, C("SUBJECT", "quarterly")) == []  # the top header only


async def test_broken_date_header_never_matches(store: SqliteStore, env: Env) -> None:
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [NewMessage(message(date="not a date"))], ORIGIN)
    box = await store.get_mailbox(bob.id, "INBOX")
    for key in ("SENTON", "SENTBEFORE", "SENTSINCE"):
        assert await store.search(box.id, C(key, dt.date(2024, 3, 1))) == []


@pytest.mark.parametrize(
    "criterion",
    [
        C("RECENT"),
        C("NEW"),
        C("SEQSET"),
        C("BOGUS"),
        C("LARGER", "x"),
        C("BEFORE", 3),
        C("NOT"),
        C("OR"),
        C("UIDS", 5),
        C("HEADER", "x"),
        C("SUBJECT", 5),
    ],
)
async def test_invalid_criteria(store: SqliteStore, criterion: Criterion) -> None:
    bob = await store.create_user("bob", "pw")
    await store.append(bob.id, "INBOX", [new()], ORIGIN)
    box = await store.get_mailbox(bob.id, "INBOX")
    with pytest.raises(ValueError):
        await store.search(box.id, criterion)


def test_cheap_terms_come_first() -> None:
    compiled = compile_criterion(C("AND", children=(C("BODY", "x"), C("SEEN"))), START)
    assert compiled.sql.index("m.seen") < compiled.sql.index("imap_text")
    assert compiled.needs_content
    assert not compile_criterion(C("SEEN"), START).needs_content


# --- FROM/TO/CC/BCC/SUBJECT over the texts stored at APPEND (content_search) --------------
STORED = [(c, expected) for c, expected in CASES if c.name in STORED_KEYS]
_STORED_IDS = [f"{c.name}-{c.value}" for c, _ in STORED]


def _texts(env: Env) -> list[tuple[object, ...]]:
    with env.db() as db:
        return db.execute(
            "SELECT from_text, to_text, cc_text, bcc_text, subject_text FROM content_search"
            " ORDER BY id"
        ).fetchall()


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
async def test_append_stores_case_folded_search_texts(env: Env, box: MailboxInfo) -> None:
    rows = _texts(env)
    assert len(rows) == 4
    from_text, to_text, cc_text, bcc_text, subject_text = rows[2]
    # Each part is preceded by a newline: the decoded header value, then the envelope's
    # addresses (display name decoded, address as name <box@host>).
    assert from_text == "\nalice <alice@example.org>\nalice <alice@example.org>"
    assert to_text == "\nbob <bob@example.org>\nbob <bob@example.org>"
    assert cc_text == "\ncarol <carol@example.com>\ncarol <carol@example.com>"
    assert bcc_text == "\ndave@example.com\ndave@example.com"
    assert subject_text == "\nlunch"
    assert rows[1][4] == "\ncafé menu"  # RFC 2047 decoded, case-folded
    assert rows[0][2] == rows[0][3] == ""  # no Cc, no Bcc


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
@pytest.mark.parametrize(("criterion", "expected"), STORED, ids=_STORED_IDS)
async def test_rows_without_texts_fall_back_to_python(
    store: SqliteStore, env: Env, box: MailboxInfo, criterion: Criterion, expected: list[int]
) -> None:
    """Contents stored before migration 0006 have no content_search row, or NULL texts:
    the same expression then calls imap_text and finds the same messages."""
    with env.db() as db:
        db.execute("DELETE FROM content_search WHERE id IN (SELECT id FROM contents LIMIT 2)")
        db.execute(
            "UPDATE content_search SET from_text = NULL, to_text = NULL, cc_text = NULL,"
            " bcc_text = NULL, subject_text = NULL"
        )
    assert _texts(env) == [(None,) * 5] * 2
    assert await store.search(box.id, criterion) == expected


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
async def test_insert_without_texts_is_searched_in_python(
    store: SqliteStore, env: Env, box: MailboxInfo
) -> None:
    """A message_in insert that leaves the text columns out (as 0002's view took them)."""
    raw = message("Stored the old way", sender='"Zoë Quinn" <zq@example.org>', cc="x@y")
    with env.db() as db:
        db.execute(
            "INSERT INTO message_in (mailbox_id, uid, modseq, seen, deleted, size,"
            " internal_epoch, internaldate, savedate, flags, header_len, message_id,"
            " structure, raw) VALUES (?, 9, 1, 0, 0, ?, 0, ?, ?, '', ?, NULL, ?, ?)",
            (
                box.id,
                len(raw),
                START.isoformat(),
                START.isoformat(),
                raw.index(b"\r\n\r\n") + 4,
                structure_to_json(parse_message(raw)),
                raw,
            ),
        )
        assert (
            db.execute(
                "SELECT * FROM content_search WHERE id = (SELECT max(id) FROM contents)"
            ).fetchone()[1:]
            == (None,) * 5
        )
    for criterion, expected in [
        (C("FROM", "ZOË QUINN <zq@"), [9]),  # the envelope form, as for stored texts
        (C("FROM", '"zoë'), [9]),  # the header as written
        (C("SUBJECT", "old way"), [9]),
        (C("CC", ""), [3, 9]),
        (C("BCC", "zq"), []),
    ]:
        assert await store.search(box.id, criterion) == expected, criterion


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
async def test_migration_keeps_an_old_store_searchable(env: Env) -> None:
    """A store written before 0006 (no content_search at all) is migrated, not rewritten."""
    before = [m for m in available() if m.name < "0006_search_text.sql"]
    raw = message("Legacy", sender="=?utf-8?q?J=C3=BCrgen?= <j@example.org>")
    async with aiosqlite.connect(env.path, isolation_level=None) as db:
        await migrate(db, before)
        await db.execute("INSERT INTO users (name, password, created) VALUES ('bob', 'x', '')")
        await db.execute(
            "INSERT INTO mailboxes (owner_id, name, uidvalidity, uidnext, messages,"
            " created) VALUES (1, 'INBOX', 1, 2, 1, '')"
        )
        await db.execute(
            "INSERT INTO message_in (mailbox_id, uid, modseq, seen, deleted, size,"
            " internal_epoch, internaldate, savedate, flags, header_len, message_id,"
            " structure, raw) VALUES (1, 1, 1, 0, 0, ?, 0, ?, ?, '', ?, NULL, ?, ?)",
            (
                len(raw),
                START.isoformat(),
                START.isoformat(),
                raw.index(b"\r\n\r\n") + 4,
                structure_to_json(parse_message(raw)),
                raw,
            ),
        )
    store = await env.open()
    with env.db() as db:
        assert db.execute("SELECT count(*) FROM content_search").fetchone() == (0,)
    await store.append(1, "INBOX", [NewMessage(message("New", sender="jürgen <k@x.org>"))], ORIGIN)
    assert await store.search(1, C("FROM", "JÜRGEN")) == [1, 2]
    assert await store.search(1, C("SUBJECT", "legacy")) == [1]
    assert await store.search(1, C("NOT", children=(C("FROM", "j@example"),))) == [2]


async def test_encoded_quoted_and_empty_needles(store: SqliteStore, env: Env) -> None:
    bob = await store.create_user("bob", "pw")
    await store.append(
        bob.id,
        "INBOX",
        [
            new(sender='"Carol Jansen" <carol.jansen@example.org>'),
            new("=?utf-8?b?U1RSQVNTRQ==?=", sender="=?iso-8859-1?q?Andr=E9?= <andre@example.org>"),
            NewMessage(b"Subject: no From at all\r\n\r\nx\r\n"),
        ],
        ORIGIN,
    )
    box = await store.get_mailbox(bob.id, "INBOX")
    assert await store.search(box.id, C("FROM", "carol jansen <carol")) == [1]
    assert await store.search(box.id, C("FROM", '"carol jansen"')) == [1]
    assert await store.search(box.id, C("FROM", "ANDRÉ <")) == [2]
    assert await store.search(box.id, C("SUBJECT", "straße")) == [2]  # casefold: ß is ss
    assert await store.search(box.id, C("FROM", "")) == [1, 2]  # the field exists
    assert await store.search(box.id, C("CC", "")) == []
    # A needle holding the part separator is matched part by part, in Python: no match
    # across two parts of the stored text.
    assert await store.search(box.id, C("FROM", "org>\ncarol")) == []


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
async def test_copies_share_the_texts_and_expunge_drops_them(
    store: SqliteStore, env: Env, box: MailboxInfo
) -> None:
    bob = await store.get_user("bob")
    copied = await store.copy_messages(box.id, [3], bob.id, "Archive", ORIGIN)
    archive = await store.get_mailbox(bob.id, "Archive")
    assert await store.search(archive.id, C("CC", "CAROL")) == list(copied.dest_uids)
    assert len(_texts(env)) == 4  # shared with the original, as the contents row is
    await store.store_flags(box.id, [1], "+", ["\\Deleted"], ORIGIN)
    await store.expunge(box.id, ORIGIN)  # 1 and 3 go; 3's content stays for its copy
    with env.db() as db:
        ids = db.execute("SELECT id FROM content_search ORDER BY id").fetchall()
        assert ids == db.execute("SELECT id FROM contents ORDER BY id").fetchall()
    assert len(ids) == 3
    env.check_counters()


def test_stored_keys_compile_to_instr_over_the_casefolded_needle() -> None:
    compiled = compile_criterion(C("FROM", "Straße"), START)
    assert "instr(s.from_text, ?)" in compiled.sql and "imap_text" in compiled.sql
    assert compiled.params[0] == "strasse"
    assert compiled.needs_search and not compiled.needs_content
    sql = compile_criterion(
        C("AND", children=(C("BODY", "x"), C("TO", "y"), C("SEEN"))), START
    ).sql  # cheapest first: plain SQL, stored text, Python
    assert sql.index("m.seen") < sql.index("s.to_text") < sql.rindex("imap_text(c.id")


@pytest.mark.sqlite_only  # SQLite's content_search texts and query plans
@pytest.mark.parametrize(
    ("criterion", "index"),
    [
        (C("UNSEEN"), "messages_seen"),
        (C("SEEN"), "messages_seen"),
        (C("DELETED"), "messages_deleted"),
        (C("UNDELETED"), "messages_deleted"),
    ],
)
async def test_flag_searches_read_a_covering_index(
    store: SqliteStore, env: Env, box: MailboxInfo, criterion: Criterion, index: str
) -> None:
    compiled = compile_criterion(criterion, START)
    # compiled from fixed fragments, values bound (as in SqliteStore.search)
    sql = f"EXPLAIN QUERY PLAN SELECT m.uid FROM messages AS m WHERE m.mailbox_id = ? AND ({compiled.sql}) ORDER BY m.uid"  # noqa: E501, S608
    with env.db() as db:
        plan = db.execute(sql, [box.id, *compiled.params]).fetchall()
    details = " ".join(row[3] for row in plan)
    assert f"COVERING INDEX {index}" in details and "TEMP B-TREE" not in details, details
