"""Namespaces (RFC 2342) end to end with imapclient: NAMESPACE, LIST across the personal,
other users' and shared namespaces, SELECT, APPEND, STATUS, SUBSCRIBE, and COPY/MOVE between
them, all as the ACL allows (RFC 4314)."""

from __future__ import annotations

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.helpers.server import PASSWORD, RunningServer

TEAM = "Other Users/alice/Team"


def login(server: RunningServer, user: str) -> imapclient.IMAPClient:
    c = imapclient.IMAPClient(server.host, port=server.port, ssl=False, timeout=10)
    c.login(user, PASSWORD)
    return c


@pytest.fixture
def shared(server: RunningServer) -> RunningServer:
    """alice's "Team" readable and writable by bob; "Shared/News" (made by admin carol)
    open to anyone for reading and inserting."""
    server.add_user("carol")
    server.call(server.server.store.set_admin("carol", True))
    alice = login(server, "alice")
    alice.create_folder("Team")
    alice.append("Team", SIMPLE)
    alice.setacl("Team", "bob", "lrswite")
    alice.logout()
    carol = login(server, "carol")
    carol.create_folder("Shared/News")
    carol.setacl("Shared/News", "anyone", "lrsi")
    carol.logout()
    return server


def test_namespace_response(server: RunningServer) -> None:
    c = login(server, "bob")
    ns = c.namespace()
    assert (ns.personal, ns.other, ns.shared) == (
        (("", "/"),),
        (("Other Users/", "/"),),
        (("Shared/", "/"),),
    )


def test_list_across_namespaces(shared: RunningServer) -> None:
    bob = login(shared, "bob")
    names = [name for _, _, name in bob.list_folders()]
    assert names[:1] == ["INBOX"]
    assert {"Other Users", "Other Users/alice", TEAM, "Shared", "Shared/News"} <= set(names)
    assert not [n for n in names if n.startswith("Other Users/alice/") and n != TEAM]
    flags = {name: f for f, _, name in bob.list_folders()}
    assert b"\\Noselect" in flags["Other Users"] and b"\\Noselect" in flags["Shared"]
    assert [name for _, _, name in bob.list_folders("Other Users/", "%")] == ["Other Users/alice"]
    assert bob.folder_status(TEAM, [b"MESSAGES"])[b"MESSAGES"] == 1
    assert bob.folder_status("Shared/News", [b"MESSAGES"])[b"MESSAGES"] == 0


def test_select_append_and_status_in_other_namespaces(shared: RunningServer) -> None:
    bob = login(shared, "bob")
    assert bob.select_folder(TEAM)[b"EXISTS"] == 1
    assert bob.fetch([1], ["ENVELOPE"])[1][b"ENVELOPE"].subject == b"Lunch on Friday"
    bob.append("Shared/News", SIMPLE)
    bob.append(TEAM, SIMPLE)
    assert bob.folder_status("Shared/News", [b"MESSAGES"])[b"MESSAGES"] == 1
    alice = login(shared, "alice")
    assert alice.folder_status("Team", [b"MESSAGES"])[b"MESSAGES"] == 2
    assert alice.folder_status("Shared/News", [b"MESSAGES"])[b"MESSAGES"] == 1


def test_copy_and_move_between_namespaces(shared: RunningServer) -> None:
    bob = login(shared, "bob")
    bob.select_folder(TEAM)
    bob.copy([1], "INBOX")
    bob.copy([1], "Shared/News")
    bob.move([1], "Archive")
    assert bob.folder_status(TEAM, [b"MESSAGES"])[b"MESSAGES"] == 0
    for name in ("INBOX", "Archive", "Shared/News"):
        assert bob.folder_status(name, [b"MESSAGES"])[b"MESSAGES"] == 1, name
    bob.select_folder("INBOX")
    bob.move([1], TEAM)  # into alice's mailbox
    alice = login(shared, "alice")
    alice.select_folder("Team")
    assert alice.search() == [2]  # UIDs: the first one went away
    # carol's anyone-rights on Shared/News have no t and e: no MOVE out of it
    bob.select_folder("Shared/News")
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="NOPERM"):
        bob.move([1], "INBOX")


def test_subscribe_across_namespaces(shared: RunningServer) -> None:
    bob = login(shared, "bob")
    bob.subscribe_folder(TEAM)
    bob.subscribe_folder("Shared/News")
    subscribed = [name for _, _, name in bob.list_sub_folders()]
    assert TEAM in subscribed and "Shared/News" in subscribed
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="NONEXISTENT"):
        bob.subscribe_folder("Other Users/alice/Drafts")


def test_names_under_namespace_prefixes_are_not_personal(shared: RunningServer) -> None:
    alice = login(shared, "alice")
    for name in ("Shared", "Other Users", "Other Users/alice"):
        with pytest.raises(imapclient.exceptions.IMAPClientError, match=r"CANNOT|NOPERM"):
            alice.create_folder(name)
    with pytest.raises(imapclient.exceptions.IMAPClientError, match="NOPERM"):
        alice.create_folder("Shared/Mine")  # not an admin
    with pytest.raises(imapclient.exceptions.IMAPClientError):
        alice.rename_folder("Team", "Shared/Team")  # another owner's namespace
    alice.create_folder("Other Users/alice/Mine")  # her own, by its other name
    assert "Mine" in [name for _, _, name in alice.list_folders()]
