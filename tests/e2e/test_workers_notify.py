"""NOTIFY listeners spread over ``imapd serve --workers 2`` (docs/workers.md, docs/notify.md):
each worker fans a commit out to its own listeners, whichever worker committed.

Real supervisor and workers on one SQLite store, raw-socket listeners (tests/rawclient.py)
told apart by worker with ``imapd who --json``. Each listener, on either worker, gets for
every APPEND made on one worker the EXISTS in its own numbering and MessageNew's FETCH with
the items it registered (RFC 5465 §5.2: "the server MUST send ... a FETCH response"
carrying the requested message attributes), and \\Recent of each message goes to exactly one
session (RFC 3501 §2.3.2)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.process import imapd
from tests.e2e.test_workers import Workers
from tests.rawclient import RawClient

NOTIFY = "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))"
MESSAGE = "From: w@example.org\r\nSubject: fan-out\r\n\r\nhello\r\n"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    data_dir = tmp_path / "data"
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    w = Workers(data_dir, None)
    yield w
    assert w.stop() == 0, w.text()


def _raw(w: Workers) -> RawClient:
    c = RawClient.connect("127.0.0.1", w.port)
    c.login("carol", "pw")
    return c


def _by_worker(w: Workers, clients: list[RawClient]) -> dict[str, list[RawClient]]:
    """The clients grouped by the worker (instance) serving each (``imapd who``)."""
    ports = {c: "{}:{}".format(*c.sock.getsockname()[:2]) for c in clients}
    deadline = time.monotonic() + 10
    while True:  # the registry lags a login by up to one beat
        where = {s["peer"]: s["instance"] for s in w.who() if s["user"] == "carol"}
        if all(p in where for p in ports.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out: dict[str, list[RawClient]] = {}
    for c, port in ports.items():
        out.setdefault(where[port], []).append(c)
    return out


def test_listeners_on_both_workers_get_a_commit_made_on_one(workers: Workers) -> None:
    clients = [_raw(workers) for _ in range(16)]
    groups = _by_worker(workers, clients)
    assert len(groups) == 2, f"all 16 connections on one worker: {list(groups)}"
    first, second = sorted(groups.values(), key=len)
    writer, listeners = first[0], [*first[1:], *second]
    mine = set(map(id, first[1:]))
    assert mine and len(listeners) > len(mine), "listeners on both workers"
    writer.ok("w0", "SELECT INBOX")
    for i, c in enumerate(listeners):
        c.ok(f"s{i}", "SELECT INBOX")
        c.ok(f"n{i}", NOTIFY)
    for n in range(1, 4):
        writer.append(f"a{n}", "INBOX", MESSAGE)
        for c in listeners:
            got: list[str] = []
            while not any(re.fullmatch(rf"\* {n} FETCH \(UID {n} FLAGS \(.*\)\)", r) for r in got):
                got.append(c.response())
                assert len(got) <= 4, got
            where = "writer's worker" if id(c) in mine else "other worker"
            assert f"* {n} EXISTS" in got, (where, got)
            assert got.index(f"* {n} EXISTS") < len(got) - 1, (where, got)  # EXISTS first
    # \Recent: each of the three messages is one session's, over both workers.
    recent: list[int] = []
    for i, c in enumerate([writer, *listeners]):
        found = [r for r in c.command(f"r{i}", "SEARCH RECENT") if r.startswith("* SEARCH")]
        recent += [int(x) for x in found[0].split()[2:]]
    assert sorted(recent) == [1, 2, 3], recent
    for c in clients:
        c.close()
