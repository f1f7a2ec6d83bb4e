"""Issue 14, hostile clients through a real server: connection limits (total, per address,
per user and address, the descriptor limit), the absolute login deadline and the idle timer,
password guessing (the fail2ban line, back-off, the same work for unknown users, other users
not slowed), and the client's ID in the session's log lines."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

#: The fail2ban filters the README gives, for text and JSON log lines (``<HOST>`` is
#: fail2ban's address pattern; fail2ban cuts the date out of a line before matching).
#: Anchored at the line's start: client-chosen text (an ID name, a user name) elsewhere in
#: a line must not be able to get an address banned.
FAIL2BAN_TEXT = r"^\s*INFO imapd\.auth: auth failed: rip=<HOST> user="
FAIL2BAN_JSON = (
    r'^\{"time": "[^"]*", "level": "INFO", "logger": "imapd\.auth", '
    r'"message": "auth failed: rip=<HOST> user='
)


def greeted(srv: RunningServer, source: str = "127.0.0.1") -> RawClient:
    """A connection from ``source`` (any 127/8 address is loopback on Linux)."""
    sock = socket.create_connection((srv.host, srv.port), timeout=10, source_address=(source, 0))
    return RawClient(sock)


def limit_lines(caplog: pytest.LogCaptureFixture, limit: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"limit {limit} reached")
    ]


# --- connection limits ---------------------------------------------------------------------
def test_per_address_limit_says_bye_and_logs_once(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server_factory(max_connections_per_ip=3)
    held = [greeted(srv) for _ in range(3)]
    for c in held:
        assert c.response().startswith("* OK")
    for _ in range(20):  # a flood: every one told, one log line
        c = greeted(srv)
        assert c.response() == "* BYE [UNAVAILABLE] Too many connections from your address"
        assert c.closed()
    assert len(limit_lines(caplog, "max_connections_per_ip")) == 1
    # Another address is not affected, and the first one gets room back as it leaves.
    other = greeted(srv, "127.0.0.2")
    assert other.response().startswith("* OK")
    held[0].command("z", "LOGOUT")
    assert held[0].closed()
    for _ in range(100):  # the server counts the connection out after closing it
        c = greeted(srv)
        if c.response().startswith("* OK"):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the address never got its connection back")


def test_total_limit_says_bye(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = server_factory(max_connections=2)
    a, b = greeted(srv), greeted(srv, "127.0.0.2")
    assert a.response().startswith("* OK") and b.response().startswith("* OK")
    for source in ("127.0.0.3", "127.0.0.4", "127.0.0.3"):
        c = greeted(srv, source)
        assert c.response() == "* BYE [UNAVAILABLE] Too many connections, try again later"
        assert c.closed()
    assert len(limit_lines(caplog, "max_connections")) == 1


def test_per_user_and_address_limit_refuses_login_with_limit(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server_factory(max_connections_per_user_ip=2)
    srv.add_user("alice")
    srv.add_user("bob")
    first, second = srv.raw("alice"), srv.raw("alice")
    third = greeted(srv)
    third.response()
    reply = third.command("a1", f"LOGIN alice {PASSWORD}")[-1]
    assert reply == "a1 NO [LIMIT] Too many connections for this user from your address"
    # Still not authenticated, and the connection goes on: another user may log in on it.
    assert third.command("a2", "SELECT INBOX")[-1].startswith("a2 BAD")
    assert third.command("a3", f"LOGIN bob {PASSWORD}")[-1].startswith("a3 OK")
    # alice from another address is another pair.
    elsewhere = greeted(srv, "127.0.0.2")
    elsewhere.login("alice", PASSWORD)
    assert len(limit_lines(caplog, "max_connections_per_user_ip")) == 1
    first.command("z", "LOGOUT")
    assert first.closed()
    for _ in range(100):
        c = greeted(srv)
        c.response()
        if c.command("b1", f"LOGIN alice {PASSWORD}")[-1].startswith("b1 OK"):
            break
        time.sleep(0.05)
    else:
        pytest.fail("alice never got her login back after one session ended")
    second.close()


def test_descriptor_limit_is_met_with_bye_not_silence(tmp_path: Path) -> None:
    """A server whose descriptor limit is lower than max_connections: connections past
    what the descriptors allow are told BYE (and one line logged), not accepted and closed
    with nothing said (libuv's answer when accept fails for want of a descriptor)."""
    data = tmp_path / "data"
    port = _free_port()
    nofile = 200

    def low_nofile() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {"IMAPD_MAX_CONNECTIONS_PER_IP": "0", "PATH": "/usr/bin:/bin"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "serve",
                "--data-dir",
                str(data),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=low_nofile,
        )
        clients: list[socket.socket] = []
        try:
            _wait_greeting(port)
            greetings: list[bytes] = []
            for _ in range(nofile + 50):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                clients.append(s)
                greetings.append(_first_line(s))
        finally:
            for s in clients:
                s.close()
            proc.terminate()
            proc.wait(30)
    text = log_path.read_text(errors="replace")
    ok = sum(g.startswith(b"* OK") for g in greetings)
    bye = sum(
        g == b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n" for g in greetings
    )
    assert ok + bye == len(greetings), [
        g for g in greetings if not g.startswith((b"* OK", b"* BYE"))
    ][:3]
    assert ok > 0 and bye > 0
    assert "max_connections 1000 lowered to" in text, text
    assert text.count("limit max_connections reached") == 1, text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_greeting(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _first_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            return data + b" (nothing in 10 s)"
        if not chunk:
            return data + b" (closed without a word)"
        data += chunk
    return data


# --- timers --------------------------------------------------------------------------------
def trickle_until_closed(c: RawClient, payload: bytes, guard: float = 15.0) -> float:
    """Send ``payload`` one byte every 0.1 s until the server closes; the time it took."""
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < guard:
        try:
            c.sock.sendall(payload[i % len(payload) : i % len(payload) + 1])
        except OSError:
            break
        i += 1
        readable, _, _ = select.select([c.sock], [], [], 0.1)
        if readable:
            try:
                chunk = c.sock.recv(4096)
            except OSError:  # reset: our late bytes reached a closed socket
                break
            c.buf += chunk
            if not chunk:
                break
    return time.monotonic() - start


def test_trickling_bytes_do_not_hold_an_unauthenticated_connection(server_factory: Any) -> None:
    srv = server_factory(login_timeout=1.0)
    c = greeted(srv)
    assert c.response().startswith("* OK")
    elapsed = trickle_until_closed(c, b"a1 NOOP" + b"x" * 1000)  # never a whole line
    assert b"* BYE Autologout; no login in time\r\n" in c.buf, c.buf
    assert elapsed < 15.0, "still connected after 15 s of trickling (login_timeout 1 s)"


def test_trickling_whole_commands_do_not_hold_an_unauthenticated_connection(
    server_factory: Any,
) -> None:
    """The login deadline is absolute: commands before login do not restart it."""
    srv = server_factory(login_timeout=1.0)
    c = greeted(srv)
    assert c.response().startswith("* OK")
    elapsed = trickle_until_closed(c, b"a NOOP\r\n")
    assert b"* BYE Autologout; no login in time\r\n" in c.buf, c.buf
    assert elapsed < 15.0


def test_idle_timer_restarts_on_commands_not_bytes(server_factory: Any) -> None:
    srv = server_factory(idle_timeout=1.0)
    srv.add_user("alice")
    busy = srv.raw("alice")
    for i in range(8):  # complete commands for twice the idle time: still there
        assert busy.command(f"n{i}", "NOOP")[-1].startswith(f"n{i} OK")
        time.sleep(0.25)
    lazy = srv.raw("alice")
    elapsed = trickle_until_closed(lazy, b"a1 NOOP" + b"x" * 1000)
    assert b"* BYE Autologout; idle for too long\r\n" in lazy.buf, lazy.buf
    assert elapsed < 15.0


# --- authentication ------------------------------------------------------------------------
AUTH_LINE = re.compile(
    r'auth failed: rip=(?P<rip>\S+) user=(?P<user>"(?:[^"\\]|\\.)*") '
    r"mech=(?P<mech>\S+) reason=(?P<reason>\S+) session=\S+ delay=[0-9.]+s$"
)


def auth_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "imapd.auth"]


def test_failed_logins_leave_one_parseable_line_and_never_the_password(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "imapd")
    c = greeted(server, "127.0.0.3")
    c.response()
    forged = 'ID ("name" "INFO imapd.auth: auth failed: rip=192.0.2.99 user=")'
    assert c.command("a0", forged)[-1].startswith("a0 OK")
    assert c.command("a1", "LOGIN alice wrongpw1")[-1].startswith("a1 NO [AUTHENTICATIONFAILED]")
    assert c.command("a2", "LOGIN nobody wrongpw2")[-1].startswith("a2 NO [AUTHENTICATIONFAILED]")
    plain = "AGFsaWNlAHdyb25ncHcz"  # base64 of "\0alice\0wrongpw3"
    assert c.command("a3", f"AUTHENTICATE PLAIN {plain}")[-1].startswith("a3 NO")
    c.send(b"a4 LOGIN {9}\r\n")
    assert c.response().startswith("+")
    c.send(b'e"v\\i\r\nl\x1b x\r\n')  # a name that tries to forge a line and a field
    assert c.response().startswith("a4 NO")
    lines = auth_lines(caplog)
    assert len(lines) == 4, lines
    parsed = [AUTH_LINE.search(line) for line in lines]
    assert all(parsed), lines
    fields = [(m["rip"], m["user"], m["mech"], m["reason"]) for m in parsed if m]
    assert fields == [
        ("127.0.0.3", '"alice"', "LOGIN", "bad-password"),
        ("127.0.0.3", '"nobody"', "LOGIN", "unknown-user"),
        ("127.0.0.3", '"alice"', "PLAIN", "bad-password"),
        ("127.0.0.3", r'"e\"v\\i\x0d\x0al\x1b"', "LOGIN", "unknown-user"),
    ]
    assert "wrongpw" not in caplog.text
    # fail2ban finds the four, and nothing in the forged ID line, in either log format.
    from imapd.daemon import JsonFormatter, TextFormatter

    host = r"(?P<host>[0-9a-fA-F.:]+)"
    date = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+")
    for formatter, failregex, cut in (
        (TextFormatter(), FAIL2BAN_TEXT, date),
        (JsonFormatter(), FAIL2BAN_JSON, None),
    ):
        pattern = re.compile(failregex.replace("<HOST>", host))
        formatted = [formatter.format(r) for r in caplog.records]
        found = [
            m["host"]
            for line in formatted
            if (m := pattern.search(cut.sub("", line) if cut else line))
        ]
        assert found == ["127.0.0.3"] * 4, formatted
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"failregex = {FAIL2BAN_TEXT}\n" in readme
    assert f"failregex = {FAIL2BAN_JSON}\n" in readme


def test_unknown_user_costs_one_verification_like_a_wrong_password(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same work whatever the name: an unknown user, the Shared/ pseudo-owner (whose
    password is no hash), and a wrong password each run exactly one scrypt with the
    configured parameters (no extra hash for the first unknown user either)."""
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(
        password: bytes, *, salt: bytes, n: int, r: int, p: int, maxmem: int = 0, dklen: int = 64
    ) -> bytes:
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    c = greeted(server)
    c.response()
    expected = (server.config.scrypt_n, 8, 1)
    for i, login in enumerate(["nobody x", "nobody y", '"" x', '"" !', "alice wrong"]):
        calls.clear()
        assert c.command(f"a{i}", f"LOGIN {login}")[-1].startswith(f"a{i} NO")
        assert calls == [expected], (login, calls)
    calls.clear()
    assert c.command("ok", f"LOGIN alice {PASSWORD}")[-1].startswith("ok OK")
    assert calls == [expected]


def test_failures_back_off_per_address_and_user(server_factory: Any) -> None:
    """Delays double with the failures of the address (and of the user name), bounded;
    a right password from another address is not delayed by them."""
    srv = server_factory(auth_failure_delay=0.2, auth_failure_delay_max=0.8)
    srv.add_user("alice")
    srv.add_user("bob")
    guard = srv.server.auth_guard
    assert [guard.delay(n) for n in (0, 1, 2, 3, 4, 10)] == [0.0, 0.2, 0.4, 0.8, 0.8, 0.8]
    attacker = greeted(srv, "127.0.0.5")
    attacker.response()
    waits = []
    for i in range(4):
        start = time.monotonic()
        assert attacker.command(f"a{i}", "LOGIN bob wrong")[-1].startswith(f"a{i} NO")
        waits.append(time.monotonic() - start)
    assert waits[0] >= 0.2 and waits[2] >= 0.8, waits  # waited at least the back-off
    # A guess at bob from a fresh address waits for bob's failures (per user) ...
    fresh = greeted(srv, "127.0.0.11")
    fresh.response()
    start = time.monotonic()
    assert fresh.command("f1", "LOGIN bob wrong")[-1].startswith("f1 NO")
    assert time.monotonic() - start >= 0.8
    # ... but bob's right password from his own address is not held back by them.
    other = greeted(srv, "127.0.0.6")
    other.response()
    assert other.command("b1", f"LOGIN bob {PASSWORD}")[-1].startswith("b1 OK")


def test_legitimate_login_is_not_queued_behind_a_guessing_address(
    server_factory: Any,
) -> None:
    """Many wrong LOGINs in flight from one address: a user on another address is served
    in a free hashing slot, not after the attacker's queue. Measured by order, not time:
    when the user's OK arrives, most of the attacker's attempts are still unanswered
    (before the fix they had all been hashed first: one FIFO thread pool for everyone)."""
    srv = server_factory(scrypt_n=2**12)
    srv.add_user("alice")
    srv.add_user("bob")
    attackers: list[RawClient] = []
    for _ in range(40):  # one attempt per connection: each its own verification at once
        a = greeted(srv, "127.0.0.7")
        assert a.response().startswith("* OK")
        attackers.append(a)
    for i, a in enumerate(attackers):
        a.send(f"x{i} LOGIN bob guess{i}\r\n".encode())
    attempts = len(attackers)
    # The attack is under way once its first answer came back.
    first = attackers[0].response()
    assert first.startswith("x0 NO"), first
    user = greeted(srv, "127.0.0.8")
    user.response()
    assert user.command("u1", f"LOGIN alice {PASSWORD}")[-1].startswith("u1 OK")
    for a in attackers:
        a.take_available()
        a.sock.settimeout(30)  # the back-off holds the rest of the answers a while
    answered = 1 + sum(a.buf.count(b" NO ") for a in attackers)
    assert answered < attempts // 2, (answered, attempts)
    # Every attempt is answered in the end, NO each.
    for n, a in enumerate(attackers[1:], 1):
        while b"\r\n" not in a.buf:
            a._fill()
        assert a.buf.startswith(f"x{n} NO [AUTHENTICATIONFAILED]".encode()), a.buf


def test_guessing_from_many_connections_does_not_block_other_addresses(
    server_factory: Any,
) -> None:
    """Parallel wrong LOGINs (threads, one connection each) while others log in: every
    legitimate login completes; the generous guard only catches a hang."""
    srv = server_factory(auth_failure_delay=0.05, auth_failure_delay_max=0.2)
    srv.add_user("alice")
    srv.add_user("bob")
    stop = threading.Event()

    def guess(n: int) -> None:
        c = greeted(srv, "127.0.0.9")
        c.response()
        i = 0
        while not stop.is_set():
            i += 1
            c.command(f"g{i}", f"LOGIN bob guess{n}-{i}")
        c.close()

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(10)]
    for t in threads:
        t.start()
    try:
        for i in range(5):
            c = greeted(srv, "127.0.0.10")
            c.response()
            assert c.command(f"u{i}", f"LOGIN alice {PASSWORD}")[-1].startswith(f"u{i} OK")
            c.command("z", "LOGOUT")
    finally:
        stop.set()
        for t in threads:
            t.join(30)


# --- ID in the log -------------------------------------------------------------------------
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_session_log_lines_name_the_client_after_id(tmp_path: Path, log_format: str) -> None:
    """`imapd serve` as run: after ID, the session's lines (here its disconnect) carry the
    client's name and version; before ID they do not."""
    data = tmp_path / "data"
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "imapd",
            "user",
            "add",
            "carol",
            "--password",
            "pw",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "imapd",
                "serve",
                "--data-dir",
                str(data),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-format",
                log_format,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_greeting(port)
            c = RawClient.connect("127.0.0.1", port)
            c.response()
            c.command("i1", 'ID ("name" "Thunder\\"bird" "version" "115.3.1" "os" "Linux")')
            c.command("l1", "LOGIN carol pw")
            c.command("z", "LOGOUT")
            assert c.closed()
        finally:
            proc.terminate()
            proc.wait(30)
    lines = log_path.read_text(errors="replace").splitlines()
    client = '"Thunder\\"bird" "115.3.1"'
    if log_format == "json":
        import json

        records = [json.loads(line) for line in lines if line.startswith("{")]
        mine = [r for r in records if r.get("session")]
        assert any(
            "disconnect carol" in r["message"] and r.get("client") == client for r in mine
        ), mine
        assert any("connect from" in r["message"] and "client" not in r for r in mine), mine
    else:
        assert any(
            "disconnect carol" in line and line.endswith(f"(client {client})") for line in lines
        ), lines
        assert any("connect from" in line and "(client" not in line for line in lines), lines
        assert any(f"client {client.replace(' ', ' version ', 1)}" in line for line in lines), lines


def test_a_limit_logs_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    """A refusal flood: one WARNING when it starts, one INFO with the count once the limit
    has refused nothing for the quiet time; then a new episode starts a new line."""
    from imapd.limits import Episodes

    caplog.set_level(logging.INFO, "imapd.limits")

    async def flood() -> None:
        episodes = Episodes(quiet=0.2)
        for _ in range(50):
            episodes.refused("max_connections_per_ip", "192.0.2.1", "100 connections")
        await asyncio.sleep(0.6)
        episodes.refused("max_connections_per_ip", "192.0.2.1", "100 connections")
        episodes.close()

    asyncio.run(flood())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "WARNING",
            "limit max_connections_per_ip reached: 100 connections"
            " (logged once until it stops refusing)",
        ),
        ("INFO", "limit max_connections_per_ip for 192.0.2.1: 50 refused in 0 s, none since 0 s"),
        (
            "WARNING",
            "limit max_connections_per_ip reached: 100 connections"
            " (logged once until it stops refusing)",
        ),
    ]
