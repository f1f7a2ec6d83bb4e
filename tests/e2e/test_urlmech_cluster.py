"""RFC 4467 §7 RESETKEY across processes: "Any current IMAP session logged in as the user that
has the mailbox selected will receive an untagged OK response with the URLMECH status
response code", also when that session lives in another ``--workers`` process on the same
SQLite store (woken through DATA_DIR/wake/) or in another instance on the same PostgreSQL
database (LISTEN/NOTIFY): the reset travels in the change log as a UrlKeysReset, written in
RESETKEY's transaction. Raw clients, real processes, a real notify socket: the URL made
before no longer URLFETCHes anywhere, no RFC 5423 event is sent for the reset, and
``imapd events tail`` prints none for it and reads every row."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.process import imapd
from tests.e2e.test_pg_cluster import two
from tests.e2e.test_urlauth import MESSAGE, append, genurlauth, urlfetch
from tests.e2e.test_urlmech import URLMECH_OK, idle_start, idle_stop, untagged_after_noop
from tests.e2e.test_workers import Workers
from tests.notify.listener import Listener
from tests.rawclient import RawClient

ACCESS = ("Login", "Logout")  # sessions coming and going meanwhile: not the point here


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def carol(port: int) -> RawClient:
    c = RawClient.connect("127.0.0.1", port)
    c.login("carol", "pw")
    return c


def peer(c: RawClient) -> str:
    host, port = c.sock.getsockname()[:2]
    return f"{host}:{port}"


def marker(owner: RawClient, listener: Listener, name: str) -> list[str]:
    """CREATE ``name``; the events up to its MailboxCreate (Login/Logout left out)."""
    owner.ok("m", f"CREATE {name}")
    out: list[str] = []
    while True:
        event = listener.next()
        if event["event"] not in ACCESS:
            out.append(event["event"])
        if event["event"] == "MailboxCreate" and f"/{name};" in event["uri"]:
            return out


def told_at_a_noop(c: RawClient, within: float = 10.0) -> list[str]:
    """The untagged responses of the first NOOP that has any: another process's commit
    reaches this one a moment later (its wake-up, or PostgreSQL's NOTIFY), not at once."""
    deadline = time.monotonic() + within
    while not (got := untagged_after_noop(c)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def told_across(a: RawClient, b: RawClient, listener: Listener) -> None:
    """``a`` and ``b``: carol's sessions in two processes; marker mailboxes Before and
    After around the two resets."""
    uid = append(a)
    url = genurlauth(a, f"imap://carol@localhost/INBOX/;uid={uid};urlauth=authuser")
    a.ok("s", "SELECT INBOX")
    b.ok("s", "SELECT INBOX")
    assert urlfetch(b, url) == MESSAGE
    idle_start(b)
    marker(a, listener, "Before")
    assert a.command("r1", "RESETKEY INBOX") == ["r1 OK [URLMECH INTERNAL] Key reset"]
    assert b.response() == URLMECH_OK  # pushed into the IDLE from the other process
    assert idle_stop(b) == []
    assert a.command("r2", "RESETKEY") == [URLMECH_OK, "r2 OK All keys removed"]
    assert told_at_a_noop(b) == [URLMECH_OK]
    assert untagged_after_noop(a) == [] and untagged_after_noop(b, "n2") == []
    window = marker(a, listener, "After")
    assert window == ["MailboxCreate"], window  # no event for either reset
    assert urlfetch(b, url) is None and urlfetch(a, url) is None


def tail_between_markers(data_dir: Path, store: str | None = None) -> None:
    """`imapd events tail --from 1` (every line has its ``vnd.imapd.seq``): reads every row
    (none "cannot be read"), and prints no event of the two resets, which are rows of the
    log between the markers' MailboxCreate (Login/Logout aside)."""
    done = imapd("events", "tail", "--from", "1", data_dir=data_dir, store=store)
    assert done.returncode == 0, done.stderr
    assert "cannot be read" not in done.stderr, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    seq = {
        name: int(e["vnd.imapd.seq"])
        for e in events
        for name in ("Before", "After")
        if e["event"] == "MailboxCreate" and f"/{name};" in e["uri"]
    }
    between = [
        (int(e["vnd.imapd.seq"]), e["event"])
        for e in events
        if seq["Before"] < int(e["vnd.imapd.seq"]) < seq["After"] and e["event"] not in ACCESS
    ]
    assert between == [], between
    assert seq["After"] - seq["Before"] >= 3  # the two resets' rows are in between


def test_resetkey_across_two_workers(tmp_path: Path, listener: Listener) -> None:
    data_dir = tmp_path / "data"
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    w = Workers(data_dir, listener.path)
    try:
        clients = [carol(w.port) for _ in range(12)]
        deadline = time.monotonic() + 10
        while True:
            where = {s["peer"]: s["instance"] for s in w.who() if s["user"] == "carol"}
            if all(peer(c) in where for c in clients) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        instances = sorted({where[peer(c)] for c in clients if peer(c) in where})
        assert len(instances) == 2, f"all sessions on one worker: {where}"
        a = next(c for c in clients if where.get(peer(c)) == instances[0])
        b = next(c for c in clients if where.get(peer(c)) == instances[1])
        for c in clients:
            if c is not a and c is not b:
                c.ok("z", "LOGOUT")
                c.close()
        told_across(a, b, listener)
        tail_between_markers(data_dir)
        assert "cannot be read" not in w.text() and "not published" not in w.text()
    finally:
        code = w.stop()
    assert code == 0, w.text()


def test_resetkey_across_two_postgres_instances(
    dsn: str, tmp_path: Path, listener: Listener
) -> None:
    first, second = two(tmp_path, dsn, listener.path)
    try:
        told_across(carol(first.port), carol(second.port), listener)
        tail_between_markers(tmp_path / "cli", dsn)
        for instance in (first, second):
            assert "cannot be read" not in instance.text(), instance.text()
    finally:
        first.stop()
        second.stop()
