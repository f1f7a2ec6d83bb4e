"""``imapd serve --store postgresql://... --workers 2`` end to end (issue 17 point 3 with
issue 18's store; docs/workers.md): a supervisor and two workers on one PostgreSQL database
(the throwaway cluster of tests/helpers/pg.py), real clients, a real notify socket.

Sessions on the two workers (told apart by ``imapd who --json``) see each other's commits
pushed in IDLE (PostgreSQL's LISTEN/NOTIFY wakes the other worker, no SQLite wake channel);
\\Recent goes to one session; each event reaches the notify socket once; who and kick reach
both workers' sessions, each session named with its client's RFC 2971 ID."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.e2e.process import imapd
from tests.e2e.test_workers import (
    Workers,
    append_events,
    local_port,
    no_more_appends,
    on_two_workers,
)
from tests.e2e.test_workers_auth_limits import logged_in_on_both, refused_on_both
from tests.notify.listener import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def test_two_workers_on_postgresql(dsn: str, tmp_path: Path, listener: Listener) -> None:
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=tmp_path / "cli", store=dsn)
    assert added.returncode == 0, added.stderr
    env = {"IMAPD_STORE": dsn, "IMAPD_AUTH_FAILURE_DELAY": "0"}
    w = Workers(tmp_path / "data", listener.path, env=env)
    try:
        a, b = on_two_workers(w)
        # Each other's commits, pushed in IDLE.
        a.select_folder("INBOX")
        b.select_folder("INBOX")
        b.idle()
        latencies = []
        for n in range(1, 4):
            a.append("INBOX", SIMPLE)
            done = time.monotonic()
            got = b.idle_check(timeout=5)
            latencies.append(time.monotonic() - done)
            assert (n, b"EXISTS") in got, got
        b.idle_done()
        print(f"IDLE push across workers on PostgreSQL: max {max(latencies) * 1000:.1f} ms")  # noqa: T201
        a.idle()
        b.append("INBOX", SIMPLE)
        assert (4, b"EXISTS") in a.idle_check(timeout=5)
        a.idle_done()
        recent = [c.search(["RECENT"]) for c in (a, b)]
        assert sorted(u for r in recent for u in r) == [1, 2, 3, 4], recent  # each once

        # Events once, whichever worker committed.
        assert sorted(append_events(listener, 4)) == [1, 2, 3, 4]
        assert no_more_appends(listener) == []

        # who (with the clients' IDs) and kick across the workers.
        a.id_({"name": "Roundcube", "version": "1.6.9"})
        b.id_({"name": "Thunderbird", "version": "128.0"})
        want = {local_port(a): "Roundcube 1.6.9", local_port(b): "Thunderbird 128.0"}
        deadline = time.monotonic() + 10
        while True:
            sessions = [s for s in w.who() if s["peer"] in want]
            shown = {s["peer"]: s["client"] for s in sessions}
            if shown == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert shown == want
        assert len({s["instance"] for s in sessions}) == 2
        kicked = imapd("kick", "--user", "carol", data_dir=w.data_dir, store=dsn)
        assert kicked.returncode == 0, kicked.stderr
        assert len(kicked.stdout.splitlines()) == 2, kicked.stdout
        for c in (a, b):
            with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
                c.noop()
                c.noop()
        assert [s for s in w.who() if s["user"] == "carol"] == []

        # Each worker's authentication cache holds the password; after a change every
        # worker refuses the old one (the key includes the row's hash, read per LOGIN).
        logged_in_on_both(w, "carol", "pw")
        changed = imapd(
            "user", "passwd", "carol", "--password", "new", data_dir=w.data_dir, store=dsn
        )
        assert changed.returncode == 0, changed.stderr
        refused_on_both(w, "carol", "pw", "new")
    finally:
        code = w.stop()
    assert code == 0, w.text()
