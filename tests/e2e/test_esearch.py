"""ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and SAVEDATE (RFC 8514) end to end: imaplib
and a raw socket for the ESEARCH forms (imapclient does not speak them), imapclient for
SAVEDATE. ESEARCH results are checked against the plain SEARCH of the same keys."""

from __future__ import annotations

import datetime as dt
import imaplib
import random
import re

import imapclient
from imapclient.datetime_util import parse_to_datetime

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

KEYS = (
    "ALL",
    "FLAGGED",
    "SEEN",
    "UNSEEN",
    "DELETED",
    "ANSWERED",
    "KEYWORD $Work",
    "OR FLAGGED SEEN",
    "NOT FLAGGED",
    "LARGER 40",
    "UID 5:30",
    "1:3,20:*",
    "DRAFT",
)
RETURNS = ("MIN", "MAX", "ALL", "COUNT")


def raw(server: RunningServer) -> RawClient:
    c = RawClient.connect(server.host, server.port)
    c.login("alice", PASSWORD)
    return c


def numbers(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def esearch_items(line: str, tag: str, uid: bool) -> dict[str, str]:
    head = f'* ESEARCH (TAG "{tag}")' + (" UID" if uid else "")
    assert line.startswith(head), line
    words = line.removeprefix(head).split()
    return dict(zip(words[::2], words[1::2], strict=True))


def fill(server: RunningServer, count: int, rng: random.Random) -> None:
    r = raw(server)
    for n in range(count):
        flags = " ".join(
            f
            for f in ("\\Flagged", "\\Seen", "\\Answered", "$Work", "\\Deleted")
            if rng.random() < 0.3
        )
        body = b"Subject: %d\r\n\r\n%s\r\n" % (n, b"x" * rng.randint(0, 60))
        r.send(b"ap APPEND INBOX (%s) {%d+}\r\n%s\r\n" % (flags.encode(), len(body), body))
        assert r.until_tagged("ap")[-1].startswith("ap OK")
    r.close()


def test_esearch_agrees_with_search(server: RunningServer) -> None:
    """Every RETURN combination of every key, SEARCH and UID SEARCH: MIN, MAX, COUNT and
    ALL are exactly those of the plain SEARCH result (RFC 4731 §3.1)."""
    rng = random.Random(4731)
    fill(server, 40, rng)
    r = raw(server)
    r.command("s", "SELECT INBOX")
    r.command("x", "STORE 7,9 +FLAGS.SILENT (\\Deleted)")
    r.command("e", "UID EXPUNGE 1:*")  # gaps between UIDs: numbers and UIDs differ
    for uid in (False, True):
        prefix = "UID SEARCH" if uid else "SEARCH"
        for key in KEYS:
            plain = r.command("p", f"{prefix} {key}")
            assert plain[-1].startswith("p OK"), plain
            found = [int(w) for w in plain[0].split()[2:]]
            for size in range(len(RETURNS) + 1):
                for opts in ([*c] for c in _combinations(RETURNS, size)):
                    lines = r.command("q", f"{prefix} RETURN ({' '.join(opts)}) {key}")
                    assert lines[-1] == "q OK SEARCH completed", lines
                    assert len(lines) == 2, lines
                    got = esearch_items(lines[0], "q", uid)
                    want = set(opts) or {"ALL"}
                    expected: dict[str, str] = {}
                    if found and "MIN" in want:
                        expected["MIN"] = str(found[0])
                    if found and "MAX" in want:
                        expected["MAX"] = str(found[-1])
                    if "COUNT" in want:
                        expected["COUNT"] = str(len(found))
                    if found and "ALL" in want:
                        assert numbers(got.pop("ALL")) == found
                    assert got == expected, (key, opts, lines)
    r.close()


def _combinations(items: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
    from itertools import combinations

    return list(combinations(items, size))


def test_esearch_through_imaplib(server: RunningServer) -> None:
    fill(server, 6, random.Random(1))
    m = imaplib.IMAP4(server.host, server.port, timeout=10)
    m.login("alice", PASSWORD)
    assert "ESEARCH" in m.capabilities and "SEARCHRES" in m.capabilities
    m.select("INBOX")
    typ, _ = m.uid("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL")
    assert typ == "OK"
    typ, data = m._untagged_response(typ, [None], "ESEARCH")
    line = data[-1]
    assert isinstance(line, bytes)
    assert re.fullmatch(rb'\(TAG "\w+"\) UID MIN 1 MAX 6 COUNT 6 ALL 1:6', line), line
    m.logout()


def test_saved_result_pipelined(server: RunningServer) -> None:
    """RFC 5182 §2.2 examples 2 and 7: SEARCH (SAVE) pipelined with commands using $."""
    rng = random.Random(5182)
    fill(server, 12, rng)
    r = raw(server)
    r.command("s", "SELECT INBOX")
    expected = [int(w) for w in r.command("k", "UID SEARCH KEYWORD $Work")[0].split()[2:]]
    assert expected
    r.send(
        b"F282 SEARCH RETURN (SAVE) KEYWORD $Work\r\n"
        b"F283 COPY $ Junk\r\n"
        b"F284 STORE $ +FLAGS.SILENT (\\Deleted)\r\n"
        b"F285 UID FETCH $ (FLAGS)\r\n"
    )
    assert r.until_tagged("F282")[-1] == "F282 OK SEARCH completed, result saved"
    assert r.until_tagged("F283")[-1].startswith("F283 OK [COPYUID ")
    assert r.until_tagged("F284")[-1] == "F284 OK STORE completed"
    fetched = r.until_tagged("F285")
    uids = [int(m.group(1)) for ln in fetched if (m := re.search(r"UID (\d+)", ln))]
    assert uids == expected
    assert all("\\Deleted" in ln for ln in fetched[:-1])
    # UID EXPUNGE $ removes exactly those; $ then names nothing
    lines = r.command("x", "UID EXPUNGE $")
    assert len([ln for ln in lines if ln.endswith(" EXPUNGE")]) == len(expected)
    assert r.command("f", "FETCH $ (UID)") == ["f OK FETCH completed"]
    status = r.command("t", "STATUS Junk (MESSAGES)")[0]
    assert status.endswith(f"(MESSAGES {len(expected)})")
    r.close()


def test_saved_result_is_per_session_and_cleared_by_select(server: RunningServer) -> None:
    fill(server, 3, random.Random(2))
    a, b = raw(server), raw(server)
    a.command("s", "SELECT INBOX")
    b.command("s", "SELECT INBOX")
    a.command("x", "SEARCH RETURN (SAVE) 2")
    assert a.command("f", "FETCH $ (UID)")[0] == "* 2 FETCH (UID 2)"
    assert b.command("f", "FETCH $ (UID)") == ["f OK FETCH completed"]
    a.command("s2", "SELECT INBOX")
    assert a.command("g", "FETCH $ (UID)") == ["g OK FETCH completed"]
    a.command("y", "SEARCH RETURN (SAVE) 3")
    a.command("c", "CLOSE")
    a.command("s3", "EXAMINE INBOX")
    assert a.command("h", "FETCH $ (UID)") == ["h OK FETCH completed"]
    a.close()
    b.close()


def test_savedate(server: RunningServer) -> None:
    """RFC 8514: SAVEDATE is when the message came into this mailbox (APPEND, COPY, MOVE),
    not its INTERNALDATE; the SAVED* keys search it."""
    c = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    c.login("alice", PASSWORD)
    old = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    c.append("INBOX", b"Subject: old\r\n\r\nx\r\n", msg_time=old)
    c.select_folder("INBOX")
    data = c.fetch([1], ["SAVEDATE", "INTERNALDATE"])[1]
    saved = parse_to_datetime(data[b"SAVEDATE"])  # imapclient leaves it as bytes
    today = dt.datetime.now(dt.UTC).date()
    assert abs((saved.date() - today).days) <= 1
    assert data[b"INTERNALDATE"].year == 2001
    assert c.search(["SAVEDATESUPPORTED"]) == [1]
    assert c.search(["SAVEDSINCE", today - dt.timedelta(days=2)]) == [1]
    assert c.search(["SAVEDBEFORE", dt.date(2002, 1, 1)]) == []
    assert c.search(["BEFORE", dt.date(2002, 1, 1)]) == [1]
    c.copy([1], "Archive")
    c.select_folder("Archive")
    copied = parse_to_datetime(c.fetch([1], ["SAVEDATE"])[1][b"SAVEDATE"])
    assert copied >= saved
    c.logout()
