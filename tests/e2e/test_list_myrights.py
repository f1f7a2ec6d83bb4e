"""LIST-MYRIGHTS (RFC 8440) end to end over raw sessions against a real server: a
``* MYRIGHTS`` after the LIST of each existing mailbox that meets the selection criteria,
with the rights this user holds (shared mailboxes with limited rights included), none for
\\NonExistent names or parents listed only for CHILDINFO, and with the other return options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.raw_session import Session
from tests.helpers.server import RunningServer

OWN = "lrswipkxteacd"  # what MYRIGHTS says of one's own mailboxes (tests/e2e/test_acl.py)


@pytest.fixture
def pair(server: RunningServer) -> Iterator[tuple[Session, Session]]:
    """alice owns Team (bob: lr), Team/Sub (bob: l) and Secret (bob: sw, no l: hidden)."""
    alice, bob = Session(server, "alice"), Session(server, "bob")
    for name in ("Team", "Team/Sub", "Secret"):
        alice.ok(f"CREATE {name}")
    alice.ok("SETACL Team bob lr")
    alice.ok("SETACL Team/Sub bob l")
    alice.ok("SETACL Secret bob sw")
    yield alice, bob
    alice.raw.close()
    bob.raw.close()


def test_capability(pair: tuple[Session, Session]) -> None:
    _, bob = pair
    assert "LIST-MYRIGHTS" in bob.ok("CAPABILITY")[0].split()


def test_shared_mailboxes_with_limited_rights(pair: tuple[Session, Session]) -> None:
    alice, bob = pair
    assert bob.ok('LIST "" "Other Users/alice/*" RETURN (MYRIGHTS)') == [
        '* LIST () "/" "Other Users/alice/Team"',
        '* MYRIGHTS "Other Users/alice/Team" lr',
        '* LIST () "/" "Other Users/alice/Team/Sub"',
        '* MYRIGHTS "Other Users/alice/Team/Sub" l',
    ]
    # the same rights as the MYRIGHTS command gives, mailbox by mailbox
    for name, rights in (("Team", "lr"), ("Team/Sub", "l")):
        box = f'"Other Users/alice/{name}"'
        assert bob.ok(f"MYRIGHTS {box}") == [f"* MYRIGHTS {box} {rights}"]
    alice.ok("SETACL Team bob +a")
    assert bob.ok('LIST "" "Other Users/alice/Team" RETURN (MYRIGHTS)')[1] == (
        '* MYRIGHTS "Other Users/alice/Team" lra'
    )
    # the owner's own view of the same mailboxes
    assert alice.ok('LIST "" "Team*" RETURN (MYRIGHTS)') == [
        '* LIST () "/" "Team"',
        f'* MYRIGHTS "Team" {OWN}',
        '* LIST () "/" "Team/Sub"',
        f'* MYRIGHTS "Team/Sub" {OWN}',
    ]


def test_only_when_asked(pair: tuple[Session, Session]) -> None:
    _, bob = pair
    for command in (
        'LIST "" "Other Users/alice/*"',
        'LIST "" "Other Users/alice/*" RETURN ()',
        'LIST "" "Other Users/alice/*" RETURN (CHILDREN)',
    ):
        assert not [ln for ln in bob.ok(command) if ln.startswith("* MYRIGHTS")], command


def test_with_status_and_children(pair: tuple[Session, Session]) -> None:
    """RFC 8440 §3 orders MYRIGHTS only after its LIST. Team/Sub without r gets no STATUS
    (RFC 5819 §2) and says \\Noselect, but its rights are still known and given."""
    _, bob = pair
    assert bob.ok('LIST "" "Other Users/alice/*" RETURN (CHILDREN MYRIGHTS STATUS (MESSAGES))') == [
        '* LIST (\\HasChildren) "/" "Other Users/alice/Team"',
        '* MYRIGHTS "Other Users/alice/Team" lr',
        '* STATUS "Other Users/alice/Team" (MESSAGES 0)',
        '* LIST (\\HasNoChildren \\Noselect) "/" "Other Users/alice/Team/Sub"',
        '* MYRIGHTS "Other Users/alice/Team/Sub" l',
    ]


def test_none_for_nonexistent_names(pair: tuple[Session, Session]) -> None:
    """RFC 8440 §4 first example: a \\NonExistent name (a subscription to a mailbox that does
    not exist, a placeholder left by DELETE) has no MYRIGHTS."""
    _, bob = pair
    bob.ok("CREATE Gone")
    bob.ok("SUBSCRIBE Gone")
    bob.ok("DELETE Gone")  # the subscription stays (RFC 3501 §6.3.6)
    bob.ok("CREATE Old/Child")
    bob.ok("DELETE Old")
    assert bob.ok('LIST (SUBSCRIBED) "" (Gone INBOX) RETURN (MYRIGHTS)') == [
        '* LIST (\\Subscribed) "/" "INBOX"',
        f'* MYRIGHTS "INBOX" {OWN}',
        '* LIST (\\Subscribed \\NonExistent) "/" "Gone"',
    ]
    assert bob.ok('LIST "" "Old*" RETURN (MYRIGHTS)') == [
        '* LIST (\\HasChildren \\NonExistent) "/" "Old"',
        '* LIST () "/" "Old/Child"',
        f'* MYRIGHTS "Old/Child" {OWN}',
    ]


def test_none_for_a_parent_listed_for_childinfo(pair: tuple[Session, Session]) -> None:
    """RFC 8440 §4 second example: "foo" is listed because a child matches the selection
    criteria, but gets no MYRIGHTS, because it does not meet them itself."""
    _, bob = pair
    bob.ok("CREATE Projects/Alpha")
    bob.ok('SUBSCRIBE "Projects/Alpha"')
    lines = bob.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Projects" RETURN (MYRIGHTS)')
    assert lines == ['* LIST () "/" "Projects" ("CHILDINFO" ("SUBSCRIBED"))']
    lines = bob.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Projects/%" RETURN (MYRIGHTS)')
    assert lines == [
        '* LIST (\\Subscribed) "/" "Projects/Alpha"',
        f'* MYRIGHTS "Projects/Alpha" {OWN}',
    ]
