"""Limits and hostile input through a real server: the protocol's answer, never a crash."""

from __future__ import annotations

import time
from typing import Any

from imapd.protocol.connection import Limits
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def raw(server: RunningServer, *, login: bool = True) -> RawClient:
    c = RawClient.connect(server.host, server.port)
    if login:
        c.login("alice", PASSWORD)
    else:
        assert c.response().startswith("* OK")
    return c


def test_sync_literal_over_limit_is_refused_before_it_is_sent(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_literal_size=1000))
    srv.add_user("alice")
    c = raw(srv)
    c.line("a1 APPEND INBOX {5000}")
    reply = c.response()
    assert reply.startswith("a1 NO [TOOBIG]"), reply
    # The connection is still in sync: the next command works.
    assert c.command("a2", "NOOP")[-1].startswith("a2 OK")
    c.line("a3 APPEND INBOX {10}")
    assert c.response().startswith("+")
    c.send(b"Subject: x")
    c.send(b"\r\n")
    assert c.until_tagged("a3")[-1].startswith("a3 OK [APPENDUID")


def test_non_sync_literal_over_limit_closes_with_bye(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_literal_size=1000))
    srv.add_user("alice")
    c = raw(srv)
    c.line("a1 APPEND INBOX {5000+}")
    assert c.response().startswith("* BYE")
    assert c.closed()


def test_line_too_long_is_bad_and_stays_in_sync(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_line_length=200))
    srv.add_user("alice")
    c = raw(srv)
    c.line("a1 NOOP " + "x" * 500)
    reply = c.response()
    assert " BAD " in reply, reply
    assert c.command("a2", "NOOP")[-1].startswith("a2 OK")


def test_unknown_command_before_login_gets_bye(server: RunningServer) -> None:
    c = raw(server, login=False)
    c.line("GET / HTTP/1.1")
    out = c.response()
    while not out.startswith("* BYE"):
        out = c.response()
    assert c.closed()


def test_malformed_commands_get_bad_with_tag(server: RunningServer) -> None:
    c = raw(server)
    for bad in (
        "a1 FETCH 1:* (FLAGS",
        "a1 SEARCH (OR)",
        'a1 SELECT "unterminated',
        "a1 STORE 1 +FLAGS (\\Recent)",
        "a1 FETCH 0 FLAGS",
        "a1 LIST",
        'a1 APPEND INBOX (\\Seen) "31-Foo-2020 00:00:00 +0000" {1+}\r\nx',
    ):
        c.line(bad)
        reply = c.response()
        assert reply.startswith("a1 BAD"), (bad, reply)
    assert c.command("ok", "NOOP")[-1].startswith("ok OK")


def test_too_many_bad_commands_end_the_session(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_bad_commands=3))
    srv.add_user("alice")
    c = raw(srv)
    for i in range(5):
        try:
            c.line(f"x{i} BOGUS")
        except OSError:
            break
    assert c.closed()
    assert b"* BYE" in c.buf


def test_deep_nesting_is_refused(server: RunningServer) -> None:
    c = raw(server)
    c.command("s", "SELECT INBOX")
    c.line("a1 SEARCH " + "(" * 200 + "ALL" + ")" * 200)
    assert c.response().startswith("a1 BAD")


def test_login_timeout_says_bye(server_factory: Any) -> None:
    srv = server_factory(login_timeout=0.3)
    c = raw(srv, login=False)
    start = time.monotonic()
    assert c.response().startswith("* BYE")
    assert c.closed()
    assert time.monotonic() - start < 5


def test_failed_login_is_delayed(server_factory: Any) -> None:
    srv = server_factory(auth_failure_delay=0.4)
    srv.add_user("alice")
    c = raw(srv, login=False)
    start = time.monotonic()
    assert c.command("a1", "LOGIN alice nope")[-1].startswith("a1 NO")
    assert time.monotonic() - start >= 0.4


def test_plaintext_login_refused_when_disallowed(server_factory: Any) -> None:
    srv = server_factory(allow_plaintext_login=False)
    srv.add_user("alice")
    c = RawClient.connect(srv.host, srv.port)
    greeting = c.response()
    assert "LOGINDISABLED" in greeting and "AUTH=PLAIN" not in greeting
    assert c.command("a1", f"LOGIN alice {PASSWORD}")[-1].startswith("a1 NO [PRIVACYREQUIRED]")


def test_garbage_bytes_never_crash_the_server(server: RunningServer) -> None:
    import random

    rng = random.Random(7)
    for _ in range(20):
        c = RawClient.connect(server.host, server.port)
        c.response()
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        try:
            c.send(blob + b"\r\n")
            c.quiet(0.05)
        except OSError:
            pass
        c.close()
    # Still serving.
    c = raw(server)
    assert c.command("a", "NOOP")[-1].startswith("a OK")


def test_password_never_logged(server: RunningServer, caplog: Any) -> None:
    import logging

    with caplog.at_level(logging.DEBUG, logger="imapd"):
        c = RawClient.connect(server.host, server.port)
        c.login("alice", PASSWORD)
        c.command("a", "LOGOUT")
    assert PASSWORD not in caplog.text
