"""Defects scripts/fuzz found through a live server, each pinned by its input."""

from __future__ import annotations

import base64

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient


def greeted(server: RunningServer) -> RawClient:
    client = RawClient.connect(server.host, server.port)
    assert client.response().startswith("* OK")
    return client


def test_login_with_a_password_that_is_not_utf8_is_refused_not_a_serverbug(
    server: RunningServer,
) -> None:
    # scripts/fuzz: `a LOGIN $.Z-+YZZ {13}` + 13 octets of binary answered NO [SERVERBUG]
    # (the password's undecodable octets reached scrypt as lone surrogates).
    client = greeted(server)
    client.send(b"a LOGIN alice {4+}\r\n\x81\xee\x13\xba\r\n")
    assert client.until_tagged("a")[-1].startswith("a NO [AUTHENTICATIONFAILED]")
    client.send(b"b LOGIN {4+}\r\n\xffbob {6+}\r\n" + PASSWORD.encode() + b"\r\n")
    assert client.until_tagged("b")[-1].startswith("b BAD")  # a user name must be UTF-8
    assert client.command("c", f"LOGIN alice {PASSWORD}")[-1].startswith("c OK")


def test_authenticate_plain_with_octets_that_are_not_utf8_is_refused(
    server: RunningServer,
) -> None:
    client = greeted(server)
    for tag, user, password, expected in [
        ("t0", b"alice", b"\xff\xfe", "t0 NO [AUTHENTICATIONFAILED]"),  # octets, as LOGIN
        ("t1", b"\xffalice", b"x", "t1 BAD Malformed PLAIN response: not UTF-8"),
        ("t2", b"alice\x80", PASSWORD.encode(), "t2 BAD Malformed PLAIN response: not UTF-8"),
    ]:
        token = base64.b64encode(b"\0" + user + b"\0" + password).decode()
        answer = client.command(tag, f"AUTHENTICATE PLAIN {token}")[-1]
        assert answer.startswith(expected), answer
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    assert client.command("t3", f"AUTHENTICATE PLAIN {token}")[-1].startswith("t3 OK")
