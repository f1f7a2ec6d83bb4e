"""SEARCH: every Criterion name the session may send, over SQL and Python text keys."""

from __future__ import annotations

import datetime as dt

import pytest

from store.api import Criterion, MailboxInfo, NewMessage, User
from store.search import compile_criterion
from store.sqlite import SqliteStore
from tests.store.conftest import ORIGIN, START, Clock, Env, message

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
        NewMessage(message("Quarterly report", "The numbers are up.\r\n",
                           date="Wed, 10 Jan 2024 09:00:00 +0000"),
                   ("\\Seen", "\\Answered"), START - dt.timedelta(days=100)),
        NewMessage(message("=?utf-8?q?Caf=C3=A9_menu?=", "Croissants\r\n",
                           sender="Bob <bob@example.net>", date="Thu, 29 Feb 2024 23:00:00 -0500",
                           extra="X-Priority: 1"),
                   ("\\Flagged", "$Work"), dt.datetime(2024, 2, 29, 23, 30, tzinfo=EST)),
        NewMessage(message("Lunch", "x" * 2000 + "\r\nNeedle in the haystack\r\n",
                           cc="Carol <carol@example.com>", bcc="dave@example.com",
                           date="Sat, 02 Mar 2024 01:00:00 +1400"),
                   ("\\Deleted", "\\Draft"), START),
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
    (C("NOT", children=(C("OR", children=(C("SUBJECT", "lunch"), C("LARGER", 500))),)),
     [1, 2, 4]),
]


@pytest.mark.parametrize(("criterion", "expected"), CASES, ids=[
    f"{c.name}-{c.value or c.header or len(c.children)}" for c, _ in CASES])
async def test_search(store: SqliteStore, box: MailboxInfo, criterion: Criterion,
                      expected: list[int]) -> None:
    assert await store.search(box.id, criterion) == expected


async def test_search_modseq_after_store(store: SqliteStore, box: MailboxInfo) -> None:
    await store.store_flags(box.id, [1], "+", ["x"], ORIGIN)
    assert await store.search(box.id, C("MODSEQ", 3)) == [1, 4]
    assert await store.search(box.id, C("MODSEQ", 4)) == [1]


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


@pytest.mark.parametrize("criterion", [
    C("RECENT"), C("NEW"), C("SEQSET"), C("BOGUS"), C("LARGER", "x"), C("BEFORE", 3),
    C("NOT"), C("OR"), C("UIDS", 5), C("HEADER", "x"), C("SUBJECT", 5),
])
def test_invalid_criteria(criterion: Criterion) -> None:
    with pytest.raises(ValueError):
        compile_criterion(criterion, START)


def test_cheap_terms_come_first() -> None:
    compiled = compile_criterion(C("AND", children=(C("BODY", "x"), C("SEEN"))), START)
    assert compiled.sql.index("m.seen") < compiled.sql.index("imap_text")
    assert compiled.needs_content
    assert not compile_criterion(C("SEEN"), START).needs_content
