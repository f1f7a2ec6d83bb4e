"""Concurrent APPENDs through the real server, committed in groups (store/sqlite/groupcommit.py,
store/postgres/groupcommit.py): many connections APPEND at once into a mailbox with room for
only some of the messages, and into one that another connection deletes meanwhile. Each
APPEND gets its own answer (OK with APPENDUID, NO [OVERQUOTA], NO [TRYCREATE]); the UIDs
handed out are gap-free; the change log holds each success exactly once, in UID and MODSEQ
order, with one QuotaExceed per refusal; the bus publishes it in seq (commit) order."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from typing import Any

from store.changes import Change, MailboxDeleted, MessagesAdded, QuotaChanged
from store.quota import Limits
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL

CONNECTIONS = 12
PER_CONNECTION = 4
SIZE = 1000
#: RFC 9208 STORAGE is in units of 1024 octets: room for exactly FITS messages of SIZE.
STORAGE_KIB = 20
FITS = STORAGE_KIB * 1024 // SIZE
APPENDUID = re.compile(r"^a\d+ OK \[APPENDUID (\d+) (\d+)\]")


def sized(n: int) -> bytes:
    head = f"Subject: racer {n:04d}\r\n\r\n".encode()
    return head + b"x" * (SIZE - len(head))


def _race(running: RunningServer, jobs: list[list[tuple[str, bytes]]]) -> list[list[str]]:
    """One connection per list of (mailbox, message), all started at once, each sending its
    APPENDs one after the other; the tagged replies, per connection."""
    clients = [RawClient.connect(running.host, running.port, timeout=60) for _ in jobs]
    for c in clients:
        c.login("alice", PASSWORD)
    barrier = threading.Barrier(len(clients))
    replies: list[list[str]] = [[] for _ in jobs]

    def run(i: int) -> None:
        barrier.wait()
        for n, (mailbox, message) in enumerate(jobs[i]):
            tag = f"a{n}"
            clients[i].send(
                f"{tag} APPEND {mailbox} {{{len(message)}+}}\r\n".encode() + message + b"\r\n"
            )
            replies[i].append(clients[i].until_tagged(tag)[-1])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for c in clients:
        c.close()
    return replies


def _uids(replies: Sequence[str]) -> list[int]:
    out = []
    for r in replies:
        m = APPENDUID.match(r)
        assert m is not None, r
        out.append(int(m.group(2)))
    return out


def test_concurrent_appends_each_answered_gap_free_logged_once_in_order(
    server: RunningServer,
) -> None:
    running = server
    store = running.server.store
    running.call(store.set_quota("alice", Limits(storage=STORAGE_KIB)))
    published: list[Change] = []

    async def listen() -> None:
        running.server.bus.add_listener(published.extend)

    running.call(listen())
    head = running.call(store.change_log_head())

    # 1. Into INBOX: 48 APPENDs from 12 connections, room for 20.
    jobs = [
        [("INBOX", sized(c * PER_CONNECTION + n)) for n in range(PER_CONNECTION)]
        for c in range(CONNECTIONS)
    ]
    replies = _race(running, jobs)
    flat = [r for rs in replies for r in rs]
    assert len(flat) == CONNECTIONS * PER_CONNECTION
    ok = [r for r in flat if " OK " in r]
    refused = [r for r in flat if " NO [OVERQUOTA]" in r]
    assert len(ok) == FITS, flat
    assert len(ok) + len(refused) == len(flat), flat
    uids = sorted(_uids(ok))
    assert uids == list(range(1, FITS + 1))  # every success a UID, no gap, none twice
    for rs in replies:  # each connection's successes in the order it sent them
        mine = _uids([r for r in rs if " OK " in r])
        assert mine == sorted(mine)
    # A refused APPEND left nothing behind: no message, no UID, no octet counted.
    status = running.raw()
    (line,) = [
        x for x in status.ok("s", "STATUS INBOX (MESSAGES UIDNEXT)") if x.startswith("* STATUS")
    ]
    assert line.endswith(f"(MESSAGES {FITS} UIDNEXT {FITS + 1})"), line
    status.close()
    usage = running.call(store.get_quota("alice")).usage
    assert (usage.storage, usage.messages) == (FITS * SIZE, FITS)

    # 2. Into a mailbox deleted while 8 connections APPEND to it (room made first).
    running.call(store.set_quota("alice", Limits()))
    admin = running.raw()
    admin.ok("c", "CREATE Doomed")
    doomed_jobs = [[("Doomed", sized(1000 + c * 10 + n)) for n in range(6)] for c in range(8)]
    deleter = threading.Timer(0.05, lambda: admin.ok("d", "DELETE Doomed"))
    deleter.start()
    doomed = _race(running, doomed_jobs)
    deleter.join()
    admin.close()
    doomed_flat = [r for rs in doomed for r in rs]
    assert all(" OK [APPENDUID" in r or " NO [TRYCREATE]" in r for r in doomed_flat), doomed_flat
    doomed_uids = sorted(_uids([r for r in doomed_flat if " OK " in r]))
    assert doomed_uids == list(range(1, len(doomed_uids) + 1))

    # 3. The change log: each success once, in commit order; one QuotaExceed per refusal.
    rows = running.call(store.change_log(head, 100_000))
    seqs = [r[0] for r in rows]
    assert seqs == list(range(head + 1, head + 1 + len(rows)))  # gap-free, ascending
    added: dict[str, list[tuple[int, int, int]]] = {"INBOX": [], "Doomed": []}
    exceeded = 0
    deleted_at = None
    for seq, kind, payload in rows:
        data: Any = json.loads(payload)
        if kind == "MessagesAdded":
            (message,) = data["messages"]
            added[data["mailbox"]["name"]].append((seq, message["uid"], message["modseq"]))
        elif kind == "QuotaChanged" and data["kind"] == "exceeded":
            exceeded += 1
        elif kind == "MailboxDeleted":
            deleted_at = seq
    assert [uid for _, uid, _ in added["INBOX"]] == uids  # UID order is commit order
    modseqs = [m for _, _, m in added["INBOX"]]
    assert modseqs == sorted(set(modseqs))
    assert exceeded == len(refused)
    assert [uid for _, uid, _ in added["Doomed"]] == doomed_uids
    assert deleted_at is not None
    assert all(seq < deleted_at for seq, _, _ in added["Doomed"])

    # 4. Published as committed: every logged change once, in seq order.
    def settled() -> list[Change]:
        async def read() -> list[Change]:
            return [c for c in published if c.seq > head]

        return list(running.call(read()))

    events = settled()
    assert [c.seq for c in events] == seqs
    assert sum(isinstance(c, MessagesAdded) for c in events) == FITS + len(doomed_uids)
    assert sum(isinstance(c, QuotaChanged) and c.kind == "exceeded" for c in events) == len(refused)
    assert sum(isinstance(c, MailboxDeleted) for c in events) == 1
