"""The per-process cache of what never changes of a message (imapd/fetch_cache.py, issue 17)
stays right while other sessions and other workers change the mailbox.

Through a real server on both stores: the cache is filled by one session's FETCH, then
another session sets flags, expunges, deletes the mailbox (left as a placeholder by its
child) and creates it again (a new UIDVALIDITY: UIDs start again at 1, with other
messages under them), and the first session's FETCHes must answer what the record path
answers (the same attributes plus BODY.PEEK[TEXT], which the rows do not serve, its item
cut off). With ``--workers 2`` the same with the changes made on the other worker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from imapd import fetch_cache
from imapd.commands import fetch as fetch_command
from tests.e2e.process import imapd
from tests.e2e.test_fetch_rows import _answers, _without_text
from tests.e2e.test_workers import Workers, on_two_workers
from tests.helpers.server import RunningServer
from tests.rawclient import RawClient

BOTH_BACKENDS = True

MIX = "UID ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"


_UNSOLICITED = re.compile(rb"\* (FLAGS|OK) |\* \d+ FETCH \((UID \d+ )?FLAGS \([^)]*\)\)$")


def _message(subject: str, body: str) -> bytes:
    return (
        f"From: {subject.lower()}@example.org\r\nTo: t@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def _append(c: RawClient, box: str, messages: list[bytes]) -> None:
    for i, m in enumerate(messages):
        c.send(b"ap%d APPEND %s {%d+}\r\n" % (i, box.encode(), len(m)) + m + b"\r\n")
        assert c.until_tagged(f"ap{i}")[-1].startswith(f"ap{i} OK")


def _same_as_records(c: RawClient, fetch: str, mix: str = MIX) -> list[bytes]:
    """The row path's answers (cached or not) to ``fetch (mix)``, checked against the
    record path's (unsolicited responses left out: a new keyword's FLAGS, flag updates)."""
    rows = [r for r in _answers(c, f"{fetch} ({mix})") if not _UNSOLICITED.match(r)]
    records = _answers(c, f"{fetch} ({mix} BODY.PEEK[TEXT])")
    records = [r for r in records if not _UNSOLICITED.match(r)]
    assert rows == [_without_text(r) for r in records]
    return rows


def test_cache_follows_changes_from_other_sessions(server: RunningServer) -> None:
    writer = server.raw()
    writer.ok("c1", "CREATE box")
    writer.ok("c2", "CREATE box/child")
    _append(writer, "box", [_message(s, "old " + s) for s in ("One", "Two", "Three")])
    reader = server.raw()
    reader.ok("s1", "SELECT box")
    first = _same_as_records(reader, "FETCH 1:*")  # fills the cache
    subjects = (b"One", b"Two", b"Three")
    assert [b"Subject: " + s in r for r, s in zip(first, subjects, strict=True)] == [True] * 3

    # Flags set elsewhere: FLAGS read from the store, the rest from the cache.
    writer.ok("s2", "SELECT box")
    writer.ok("f1", "STORE 2 +FLAGS.SILENT (\\Flagged $Cached)")
    flagged = _same_as_records(reader, "FETCH 2", "FLAGS " + MIX)
    assert b"\\Flagged $Cached" in flagged[0] and b"Subject: Two" in flagged[0]
    both = _same_as_records(reader, "FETCH 1:*", f"MODSEQ {MIX} FLAGS")  # read, in their order
    assert b"MODSEQ (" in both[1] and b"$Cached" in both[1]

    # Expunged elsewhere, not yet told: still served (RFC 2180 §4.1.1); told: gone.
    writer.ok("x1", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    writer.ok("x2", "EXPUNGE")
    served = [r for r in _answers(reader, f"FETCH 1:3 ({MIX})") if b"ENVELOPE" in r]
    assert served == first
    assert "* 2 EXPUNGE" in reader.ok("n1", "NOOP")
    after = _same_as_records(reader, "FETCH 1:*")
    assert after == [first[0], first[2].replace(b"* 3 FETCH", b"* 2 FETCH")]
    flags = [r for r in _answers(reader, "FETCH 1:* (FLAGS UID ENVELOPE)") if b"ENVELOPE" in r]
    assert len(flags) == 2 and all(b"$Cached" not in r for r in flags)

    # The mailbox deleted (a placeholder, for its child) and created again: a new
    # UIDVALIDITY, UIDs from 1 again, other messages under them.
    writer.ok("u1", "UNSELECT")
    reader.ok("u2", "UNSELECT")
    writer.ok("d1", "DELETE box")
    writer.ok("d2", "CREATE box")
    _append(writer, "box", [_message(s, "new " + s) for s in ("Four", "Five")])
    reader.ok("s3", "SELECT box")
    again = _same_as_records(reader, "FETCH 1:*")
    assert len(again) == 2
    assert b"Subject: Four" in again[0] and b"UID 1 " in again[0]
    assert b"Subject: Five" in again[1] and b"UID 2 " in again[1]
    assert not any(b"One" in r or b"Three" in r for r in again)
    # Only attributes that never change (UID, RFC822.SIZE): answered without a read.
    _same_as_records(reader, "FETCH 1:*", "INTERNALDATE UID RFC822.SIZE")
    sizes = _answers(reader, "FETCH 1:* (UID RFC822.SIZE)")
    want = [len(_message(s, "new " + s)) for s in ("Four", "Five")]
    line = b"* %d FETCH (UID %d RFC822.SIZE %d)"
    assert sizes == [line % (i, i, n) for i, n in enumerate(want, 1)]
    writer.close()
    reader.close()


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Workers]:
    data_dir = tmp_path / "data"
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    w = Workers(data_dir, None)
    yield w
    assert w.stop() == 0, w.text()


def test_cache_follows_changes_from_the_other_worker(two_workers: Workers) -> None:
    """Sessions on two workers (each with its own cache): changes committed by one are
    seen by the other's cached FETCHes as by the record path."""
    here, there = on_two_workers(two_workers)
    there.create_folder("box")
    there.create_folder("box/child")
    for s in ("One", "Two", "Three"):
        there.append("box", _message(s, "old " + s))
    here.select_folder("box")
    mix = ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE"]

    def fetched(atts: list[str]) -> dict[int, dict[bytes, Any]]:
        uids = here.search("ALL")
        got: dict[int, dict[bytes, Any]] = here.fetch(uids, atts)
        records = here.fetch(uids, [*atts, "BODY.PEEK[TEXT]"])
        for uid, items in got.items():
            want = {k: v for k, v in records[uid].items() if k != b"BODY[TEXT]"}
            assert items == want
        return got

    first = fetched(mix)
    assert [first[u][b"ENVELOPE"].subject for u in (1, 2, 3)] == [b"One", b"Two", b"Three"]
    there.select_folder("box")
    there.add_flags([2], ["$Cached"], silent=True)
    assert b"$Cached" in fetched(["FLAGS", *mix])[2][b"FLAGS"]
    there.delete_messages([2])
    there.expunge()
    _told(here)
    assert sorted(fetched(mix)) == [1, 3]
    there.unselect_folder()
    here.unselect_folder()
    there.delete_folder("box")
    there.create_folder("box")
    for s in ("Four", "Five"):
        there.append("box", _message(s, "new " + s))
    here.select_folder("box")
    again = fetched(mix)
    assert sorted(again) == [1, 2]
    assert [again[u][b"ENVELOPE"].subject for u in (1, 2)] == [b"Four", b"Five"]
    here.logout()
    there.logout()


def _told(c: imapclient.IMAPClient, timeout: float = 10.0) -> None:
    """NOOP until the client is told of an expunge the other worker committed (its wake
    reaches this worker within milliseconds, but not before the NOOP is answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(b"EXPUNGE" in bytes(r[1]) for r in c.noop()[1] if isinstance(r, tuple)):
            return
        time.sleep(0.05)
    raise AssertionError("the expunge was never reported")


def test_cache_filled_and_rendered_off_the_loop(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `RENDER_IN_THREAD` (set tiny here) the entries are made and the lines rendered
    in a thread: the same answers, filling the cache and then from it."""
    monkeypatch.setattr(fetch_command, "RENDER_IN_THREAD", 64)
    made: list[int] = []
    make = fetch_cache.make

    def counted(rows: list[tuple[object, ...]]) -> list[fetch_cache.Entry]:
        made.append(len(rows))
        return make(rows)

    monkeypatch.setattr(fetch_cache, "make", counted)
    c = server.raw()
    _append(c, "INBOX", [_message(s, "body " + s) for s in ("One", "Two", "Three")])
    c.ok("s1", "EXAMINE INBOX")
    cold = _same_as_records(c, "FETCH 1:*")
    warm = _same_as_records(c, "FETCH 1:*", "FLAGS " + MIX)
    assert made == [3]  # filled once, then read from the cache
    assert [re.sub(rb"FETCH \(FLAGS \([^)]*\) ", b"FETCH (", r) for r in warm] == cold
    c.close()
