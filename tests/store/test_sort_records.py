"""The store's SORT/THREAD reads (store/sqlite/sort.py) on a real SQLite file: keys from the
stored envelope (including a top-level message/rfc822 whose envelope the structure stores
as its encapsulated message's), References read for THREAD only, the content-key cache,
and cached orders and trees that follow APPEND and EXPUNGE."""

from __future__ import annotations

import datetime as dt

from store.api import Criterion, NewMessage
from store.sortthread.collation import casemap
from store.sqlite import SqliteStore
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True

INNER = (
    b"From: Zed <zed@x.org>\r\nTo: t@x.org\r\nSubject: Re: wrapped\r\n"
    b"Date: Mon, 2 Jan 2023 10:00:00 +0000\r\nMessage-ID: <w@x>\r\n\r\nbody\r\n"
)


def raw(
    subject: str,
    mid: str,
    refs: str = "",
    date: str = "Mon, 2 Jan 2023 10:00:00 +0000",
    sender: str = "a@x.org",
) -> bytes:
    head = f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\n"
    if refs:
        head += f"References: {refs}\r\n"
    return (head + "\r\nbody\r\n").encode()


async def test_records_and_caches(store: SqliteStore, env: Env) -> None:
    bob = await store.create_user("bob", "pw")
    when = dt.datetime(2023, 1, 5, tzinfo=dt.UTC)
    # the whole message is a message/rfc822 wrapper with the same headers as its content
    wrapper = (
        INNER.replace(b"\r\n\r\nbody\r\n", b"\r\nContent-Type: message/rfc822\r\n\r\n") + INNER
    )
    await store.append(
        bob.id,
        "INBOX",
        [
            NewMessage(raw("Plans", "<p@x>", sender="Bea <bea@x.org>"), (), when),
            NewMessage(
                raw("Re: Plans", "<r@x>", "<p@x>", "Tue, 3 Jan 2023 10:00:00 +0000"), (), when
            ),
            NewMessage(wrapper, (), when),
        ],
        ORIGIN,
    )
    box = await store.get_mailbox(bob.id, "INBOX")
    records = await store.sort_records(box.id, Criterion("ALL"))
    assert [r.uid for r in records] == [1, 2, 3]
    assert records[0].keys.display_from == casemap("Bea")
    assert records[0].keys.from_ == "BEA"
    assert records[1].keys.subject == "PLANS" and records[1].keys.reply
    assert records[1].keys.references is None  # not read for SORT
    assert records[2].keys.subject == "WRAPPED"  # the envelope behind the marker
    assert records[2].sent == int(dt.datetime(2023, 1, 2, 10, tzinfo=dt.UTC).timestamp())
    with_refs = await store.sort_records(box.id, Criterion("ALL"), references=True)
    assert with_refs[1].keys.references == ("<p@x>",)
    assert with_refs[0].keys.references == ()

    order = await store.sort_order(box.id, (("DATE", True),))
    assert order == [2, 1, 3]
    # the kept sort state (store/sortstate.py) answers with the same list while nothing changed
    assert await store.sort_order(box.id, (("DATE", True),)) is order
    roots = await store.thread_roots(box.id, "REFERENCES", None, [1, 2, 3])
    assert [(n.uid, [c.uid for c in n.children]) for n in roots] == [(1, [2]), (3, [])]
    again = await store.thread_roots(box.id, "REFERENCES", None, [1, 2, 3])
    assert again is roots

    await store.append(
        bob.id, "INBOX", [NewMessage(raw("Re: Plans", "<s@x>", "<r@x>"), (), when)], ORIGIN
    )
    assert await store.sort_order(box.id, (("DATE", True),)) == [2, 1, 3, 4]
    roots = await store.thread_roots(box.id, "REFERENCES", None, [1, 2, 3, 4])
    assert roots[0].uid == 1 and [c.uid for c in next(iter(roots[0].children)).children] == [4]
    # only the UIDs a session was told of
    roots = await store.thread_roots(box.id, "REFERENCES", None, [1, 2, 3])
    assert [n.uid for n in roots] == [1, 3]
    await store.store_flags(box.id, [1], "+", ("\\Deleted",), ORIGIN)
    await store.expunge(box.id, ORIGIN)
    assert await store.sort_order(box.id, (("DATE", True),)) == [2, 3, 4]
    roots = await store.thread_roots(box.id, "REFERENCES", Criterion("ALL"), None)
    assert [n.uid for n in roots] == [3, 2]  # 1 gone: 2 under a dummy, promoted; by date
