"""Several sessions at once on one mailbox, through imaplib (RFC 3501 §5.5, §7.4.1)."""

from __future__ import annotations

import imaplib
import re
import threading

from tests.e2e.messages import numbered
from tests.helpers.server import PASSWORD, RunningServer


def connect(server: RunningServer, user: str = "alice") -> imaplib.IMAP4:
    c = imaplib.IMAP4(server.host, server.port, timeout=20)
    c.login(user, PASSWORD)
    return c


def test_parallel_appends_get_unique_ascending_uids(server: RunningServer) -> None:
    results: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            c = connect(server)
            for i in range(20):
                typ, data = c.append("INBOX", None, None, numbered(w * 100 + i))
                assert typ == "OK"
                m = re.search(rb"APPENDUID \d+ (\d+)", data[0])
                assert m
                with lock:
                    results.append(int(m.group(1)))
            c.logout()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == list(range(1, 201))
    c = connect(server)
    _, data = c.select("INBOX")
    assert data == [b"200"]
    _, found = c.uid("SEARCH", "ALL")
    assert found[0] is not None
    assert [int(x) for x in found[0].split()] == list(range(1, 201))


def test_flag_change_seen_by_other_session_after_noop(server: RunningServer) -> None:
    a = connect(server)
    b = connect(server)
    a.append("INBOX", None, None, numbered(1))
    a.select("INBOX")
    b.select("INBOX")
    b.store("1", "+FLAGS", "(\\Flagged)")
    typ, _ = a.noop()
    assert typ == "OK"
    fetches = a.untagged_responses.get("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), a.untagged_responses


def test_new_message_seen_by_other_session_with_exists_and_recent(server: RunningServer) -> None:
    a = connect(server)
    b = connect(server)
    a.select("INBOX")
    a.untagged_responses.clear()
    b.append("INBOX", None, None, numbered(1))
    a.noop()
    assert a.untagged_responses.get("EXISTS") == [b"1"]
    # \Recent goes to exactly one session: `a` learned of it first.
    assert a.untagged_responses.get("RECENT") == [b"1"]
    b.select("INBOX")
    assert b.untagged_responses.get("RECENT") == [b"0"]


def test_examine_is_read_only_and_does_not_claim_recent(server: RunningServer) -> None:
    a = connect(server)
    a.append("INBOX", None, None, numbered(1))
    a.select("INBOX", readonly=True)
    assert a.untagged_responses.get("RECENT") == [b"1"]
    typ, data = a.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "NO" and b"READ-ONLY" in data[0]
    b = connect(server)
    b.select("INBOX")
    assert b.untagged_responses.get("RECENT") == [b"1"]
