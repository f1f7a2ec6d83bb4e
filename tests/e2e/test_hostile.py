"""Hostile input through a real server (issue 14): each attack gets the RFC's answer, and
another client's NOOP is answered while it runs ("no client can stall others").

Against the old code these fail by timeout (the socket timeouts below), not by a speed
threshold: the LIST ran for hours, the SEARCH answered NO [SERVERBUG]."""

from __future__ import annotations

from tests.conftest import PASSWORD, RunningServer
from tests.rawclient import RawClient

#: The issue's attack: near-misses make a backtracking matcher take exponential time.
EVIL_PATTERN = "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z"


def client(server: RunningServer, timeout: float = 20.0, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port, timeout=timeout)
    c.login(user, PASSWORD)
    return c


def noop_answered(server: RunningServer, user: str = "bob") -> None:
    """A second client logs in and its NOOP completes (the socket times out after 20 s
    when the event loop is stalled)."""
    other = client(server, user=user)
    assert other.command("n1", "NOOP")[-1].startswith("n1 OK")
    other.close()


def test_list_near_miss_pattern_is_linear(server: RunningServer) -> None:
    c = client(server)
    c.ok("c1", "CREATE aaaaaaaaaaaaaaaaaaaa")
    c.ok("c2", "CREATE aaaaaaaaaaaaaaaaaaaaZ")
    c.line(f'l1 LIST "" "{EVIL_PATTERN}"')
    noop_answered(server)
    out = c.until_tagged("l1")
    assert out[-1].startswith("l1 OK"), out
    assert [r for r in out if r.startswith("* LIST")] == [
        '* LIST (\\HasNoChildren) "/" "aaaaaaaaaaaaaaaaaaaaZ"'
    ]
    c.line(f'l2 LSUB "" "{EVIL_PATTERN}"')
    c.line(f'l3 LIST (SUBSCRIBED) "" ("{EVIL_PATTERN}" "%")')
    assert c.until_tagged("l2")[-1].startswith("l2 OK")
    assert c.until_tagged("l3")[-1].startswith("l3 OK")
    noop_answered(server)


def test_list_with_many_wildcards_and_long_names(server: RunningServer) -> None:
    c = client(server)
    name = "a" * 200
    c.ok("c1", f"CREATE {name}")
    c.line(f'l1 LIST "" "{"%a" * 300}Z"')
    noop_answered(server)
    assert c.until_tagged("l1")[-1].startswith("l1 OK")


