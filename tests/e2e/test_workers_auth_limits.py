"""``imapd serve --workers 2``: what each worker keeps in memory must still act as one server.

- The authentication cache (store/authcache.py) is each worker's own: after
  ``imapd user passwd``, every worker refuses the old password, although each had it cached;
  after ``imapd user delete``, every worker refuses the user.
- The connection limits (``max_connections_per_ip``, ``max_connections_per_user_ip``) hold for
  the whole server, not per worker (imapd/cluster/admission.py), and a worker killed with -9
  takes its connections out of the counts.

Which worker served a connection is told by ``imapd who --json`` (each session's instance:
``host/pid/random``), so the tests check that both workers were exercised, not assume it.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest

from tests.e2e.process import imapd
from tests.e2e.test_workers import Workers, local_port


def _pid(instance: str) -> int:
    return int(instance.split("/")[1])


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Workers]:
    data_dir = tmp_path / "data"
    for user in ("carol", "dave"):
        added = imapd("user", "add", user, "--password", "pw", data_dir=data_dir)
        assert added.returncode == 0, added.stderr
    w = Workers(data_dir, None, env={"IMAPD_AUTH_FAILURE_DELAY": "0"})
    yield w
    assert w.stop() == 0, w.text()


def _login(w: Workers, user: str, password: str) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient("127.0.0.1", w.port, ssl=False, timeout=10)
    c.login(user, password)
    return c


def logged_in_on_both(w: Workers, user: str, password: str) -> None:
    """Log ``user`` in until both workers have verified (and so cached) ``password``."""
    clients: list[imapclient.IMAPClient] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        clients.append(_login(w, user, password))
        if len(clients) % 4:
            continue
        where = {s["peer"]: s["instance"] for s in w.who() if s["user"] == user}
        if len({where.get(local_port(c)) for c in clients} - {None}) == 2:
            break
    else:
        raise AssertionError(f"{len(clients)} logins of {user}, all on one worker")
    for c in clients:
        c.logout()


def refused_on_both(w: Workers, user: str, old: str, new: str) -> None:
    """Each connection tries the old password (refused), then the new one (taken), so `who`
    tells which worker refused it; until both workers have refused."""
    refused_on: set[str] = set()
    deadline = time.monotonic() + 20
    while len(refused_on) < 2:
        assert time.monotonic() < deadline, f"refusals seen on {refused_on} only"
        c = imapclient.IMAPClient("127.0.0.1", w.port, ssl=False, timeout=10)
        with pytest.raises(imapclient.exceptions.LoginError):
            c.login(user, old)
        c.login(user, new)
        where: dict[str, str] = {}
        while local_port(c) not in where and time.monotonic() < deadline:
            where = {s["peer"]: s["instance"] for s in w.who() if s["user"] == user}
        refused_on.add(where[local_port(c)])
        c.logout()


def test_every_worker_refuses_the_old_password_and_the_deleted_user(two: Workers) -> None:
    logged_in_on_both(two, "carol", "pw")
    changed = imapd("user", "passwd", "carol", "--password", "new", data_dir=two.data_dir)
    assert changed.returncode == 0, changed.stderr
    refused_on_both(two, "carol", "pw", "new")

    logged_in_on_both(two, "dave", "pw")
    deleted = imapd("user", "delete", "dave", data_dir=two.data_dir)
    assert deleted.returncode == 0, deleted.stderr
    for _ in range(12):  # both workers among twelve connections, all but surely
        c = imapclient.IMAPClient("127.0.0.1", two.port, ssl=False, timeout=10)
        with pytest.raises(imapclient.exceptions.LoginError):
            c.login("dave", "pw")
        c.logout()


def _connect(port: int) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        chunk = s.recv(200)
        if not chunk:
            break
        greeting += chunk
    return s, greeting


def _admitted(port: int, limit: int) -> tuple[list[socket.socket], bytes]:
    """Connections until one is refused (at most ``limit`` + 4): those admitted, and the
    refusal's greeting."""
    held: list[socket.socket] = []
    for _ in range(limit + 4):
        s, greeting = _connect(port)
        if greeting.startswith(b"* OK"):
            held.append(s)
            continue
        s.close()
        return held, greeting
    return held, b""


def _command(s: socket.socket, line: bytes) -> bytes:
    s.sendall(line)
    tag = line.split(b" ", 1)[0]
    out = b""
    while not any(x.startswith(tag + b" ") for x in out.split(b"\r\n")):
        chunk = s.recv(4096)
        assert chunk, out
        out += chunk
    return out


@pytest.mark.parametrize("per_ip", [6])
def test_connection_limits_hold_across_workers(tmp_path: Path, per_ip: int) -> None:
    data_dir = tmp_path / "data"
    added = imapd("user", "add", "carol", "--password", "pw", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    w = Workers(
        data_dir,
        None,
        env={
            "IMAPD_MAX_CONNECTIONS_PER_IP": str(per_ip),
            "IMAPD_MAX_CONNECTIONS_PER_USER_IP": "3",
        },
    )
    try:
        held, refusal = _admitted(w.port, per_ip)
        # Per worker, two workers would admit up to twice the limit.
        assert len(held) == per_ip, len(held)
        assert refusal.startswith(b"* BYE [UNAVAILABLE]"), refusal

        # max_connections_per_user_ip: three sessions of carol from this address in all.
        answers = [_command(s, b"a LOGIN carol pw\r\n") for s in held]
        taken = [s for s, a in zip(held, answers, strict=True) if b"a OK" in a]
        assert len(taken) == 3, answers
        assert all(b"a NO [LIMIT]" in a for a in answers if b"a OK" not in a), answers

        # Which workers hold them (the registry lags a login by a beat).
        ports = {f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in taken}
        deadline = time.monotonic() + 10
        while True:
            where = {x["peer"]: x["instance"] for x in w.who() if x["user"] == "carol"}
            if ports <= where.keys() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        print(f"sessions by worker: {sorted(where[p] for p in ports)}")  # noqa: T201

        # A worker killed with -9 never ran its disconnects: its counts go with it, so once
        # every connection is closed the whole limit is free again.
        victim = _pid(where[next(iter(ports))])
        os.kill(victim, signal.SIGKILL)
        for s in held:
            s.close()
        w.wait_for(lambda: len(w.serving()) >= 3, "restart of the killed worker")
        deadline = time.monotonic() + 10
        while True:  # the surviving worker's closes are noticed when its loop reads EOF
            again, _ = _admitted(w.port, per_ip)
            count = len(again)
            for s in again:
                s.close()
            if count == per_ip or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert count == per_ip
    finally:
        assert w.stop() == 0, w.text()


def test_who_shows_each_workers_clients_id(two: Workers) -> None:
    """`imapd who` names each session's client as its RFC 2971 ID did, for the sessions of
    the worker that answers and, through the session registry, of the other one."""
    from tests.e2e.test_workers import on_two_workers

    a, b = on_two_workers(two)
    a.id_({"name": "Roundcube", "version": "1.6.9"})
    b.id_({"name": "Thunderbird", "version": "128.0"})
    want = {local_port(a): "Roundcube 1.6.9", local_port(b): "Thunderbird 128.0"}
    deadline = time.monotonic() + 10
    while True:  # the registry learns the other worker's ID at that worker's next beat
        shown = {s["peer"]: s["client"] for s in two.who() if s["peer"] in want}
        if shown == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert shown == want
    table = imapd("who", data_dir=two.data_dir).stdout
    assert "Roundcube 1.6.9" in table and "Thunderbird 128.0" in table, table
