"""Group commit under a crash (store/sqlite/groupcommit.py): many sessions APPEND at once, so
their writes commit in shared groups; the real server process is killed with -9 while
APPENDs are in flight. After a restart every APPEND that got its tagged OK is there, and
nothing is half done: `imapd fsck` finds the invariants intact, and every message has the
change_log row of its MessagesAdded (a change and its events commit together or not at all)."""

from __future__ import annotations

import contextlib
import imaplib
import sqlite3
import threading
import time

from store.changes import MessagesAdded, read_change
from tests.e2e.process import Proc, imapd

SESSIONS = 8


def _body(subject: str) -> bytes:
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\n"
        + "line of text\r\n" * 20
    ).encode()


def test_kill9_during_group_commits_keeps_every_acknowledged_append(proc: Proc) -> None:
    proc.start()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def session(n: int) -> None:
        c = proc.client()
        i = 0
        with contextlib.suppress(OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
            while not stop.is_set():
                subject = f"s{n}-m{i}"
                typ, _ = c.append("INBOX", None, None, _body(subject))
                if typ == "OK":  # the tagged OK came: the client may rely on it
                    with lock:
                        acked.append(subject)
                i += 1

    threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill9()  # APPENDs of the other sessions are queued or committing right now
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 150

    fsck = imapd("fsck", data_dir=proc.data_dir)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

    proc.start()
    c = proc.client()
    typ, data = c.select("INBOX")
    assert typ == "OK"
    count = int(data[0] or b"0")
    typ, fetched = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    subjects = {
        part[1].decode().split(":", 1)[1].strip() for part in fetched if isinstance(part, tuple)
    }
    c.logout()
    proc.stop()
    missing = sorted(set(acked) - subjects)
    assert not missing, f"{len(missing)} acknowledged APPENDs lost: {missing[:5]}"
    assert len(subjects) == count  # no message twice

    db = sqlite3.connect(proc.data_dir / "imapd.sqlite3")
    try:
        uids = {r[0] for r in db.execute("SELECT uid FROM messages")}
        logged: list[int] = []
        for seq, kind, payload in db.execute("SELECT seq, kind, payload FROM change_log"):
            change = read_change(kind, seq, payload)
            if isinstance(change, MessagesAdded):
                logged += [m.uid for m in change.messages]
    finally:
        db.close()
    assert sorted(logged) == sorted(uids)  # each message's change committed with it, once


def test_concurrent_sessions_one_over_quota_the_others_unaffected(proc: Proc) -> None:
    """dave's APPENDs past his quota are refused (RFC 9208 §4.3.1, NO [OVERQUOTA]) while
    carol's sessions append at the same moment: refusals roll back alone, carol's all land."""
    for args in (("user", "add", "dave", "--password", "pw"), ("quota", "set", "dave")):
        done = imapd(
            *args, *(["--messages", "2"] if args[0] == "quota" else []), data_dir=proc.data_dir
        )
        assert done.returncode == 0, done.stderr
    proc.start()
    start = threading.Barrier(SESSIONS + 1)
    answers: dict[str, list[tuple[str, bytes]]] = {}

    def session(user: str, n: int, count: int) -> None:
        c = imaplib.IMAP4("127.0.0.1", proc.port, timeout=30)
        c.login(user, "pw")
        start.wait(30)
        got = answers.setdefault(f"{user}{n}", [])
        for i in range(count):
            typ, data = c.append("INBOX", None, None, _body(f"{user}{n}-{i}"))
            got.append((typ, data[0] or b""))
        c.logout()

    threads = [threading.Thread(target=session, args=("carol", n, 15)) for n in range(SESSIONS)]
    threads.append(threading.Thread(target=session, args=("dave", 0, 6)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    carol = [a for key, got in answers.items() if key.startswith("carol") for a in got]
    assert len(carol) == SESSIONS * 15 and all(typ == "OK" for typ, _ in carol), carol
    dave = answers["dave0"]
    assert [typ for typ, _ in dave] == ["OK", "OK"] + ["NO"] * 4
    assert all(b"[OVERQUOTA]" in text for _, text in dave[2:])
    for user, expected in (("carol", SESSIONS * 15), ("dave", 2)):
        c = imaplib.IMAP4("127.0.0.1", proc.port, timeout=30)
        c.login(user, "pw")
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0] or b"0") == expected
        c.logout()
    proc.stop()
    fsck = imapd("fsck", data_dir=proc.data_dir)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
