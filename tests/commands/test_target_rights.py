"""APPEND/COPY rights without a socket (tests/helpers/handlers.py): the right on the target
is the one the user has when the command runs, not the one seen at SELECT, and a revoke
committed between the handler's lookup and the store's write is honoured (RFC 4314 §4)."""

from __future__ import annotations

import pytest

from store import acl
from store.api import MailboxInfo
from tests.helpers.handlers import TestContext, message

TEAM = b'"Other Users/bob/Team"'
APPEND = b"a APPEND " + TEAM + b" (\\Seen) {%d+}\r\n%b"
#: With a keyword: the handler looks the target up first (its keyword limit), then writes.
APPEND_KEYWORD = b"a APPEND " + TEAM + b" (\\Seen $Work) {%d+}\r\n%b"


def _append_line(command: bytes = APPEND) -> bytes:
    content = message("shared").content
    assert isinstance(content, bytes)
    return command % (len(content), content)


async def _bobs_team(ctx: TestContext, rights: str) -> int:
    """bob's Team, with ``rights`` for alice (the context's user); returns bob's id."""
    bob = await ctx.store.create_user("bob", "secret")
    await ctx.store.create_mailbox(bob.id, "Team", ctx.origin)
    await ctx.store.set_acl(bob.id, "Team", "alice", acl.parse_modification(rights), ctx.origin)
    return bob.id


async def test_append_after_a_revoke_since_select_is_refused(ctx: TestContext) -> None:
    bob = await _bobs_team(ctx, "lri")
    outcome, _ = await ctx.do(b"s SELECT " + TEAM)
    assert outcome.status == "OK" and ctx.mailbox is not None and "i" in ctx.mailbox.rights
    await ctx.store.set_acl(bob, "Team", "alice", acl.parse_modification("-i"), ctx.origin)
    _, wire = await ctx.do(_append_line())
    assert wire == b"a NO [NOPERM] Permission denied\r\n"
    assert (await ctx.store.get_mailbox(bob, "Team")).messages == 0


async def test_a_revoke_between_lookup_and_write_is_honoured(
    ctx: TestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob revokes alice's ``i`` right after the handler's lookup read it (the store's
    get_mailbox returns, then the revoke commits): the write refuses, nothing is added.
    (Only an APPEND with keywords looks the target up before the write; without, the
    store's write transaction is the only check.)"""
    bob = await _bobs_team(ctx, "lri")
    store = ctx.store
    real = store.get_mailbox
    looked_up: list[MailboxInfo] = []

    async def lookup_then_revoke(user_id: int, name: str) -> MailboxInfo:
        info = await real(user_id, name)
        looked_up.append(info)
        await store.set_acl(bob, "Team", "alice", acl.parse_modification("-i"), ctx.origin)
        return info

    monkeypatch.setattr(store, "get_mailbox", lookup_then_revoke)
    _, wire = await ctx.do(_append_line(APPEND_KEYWORD))
    assert [i.rights for i in looked_up] == ["lri"]  # the handler's check passed
    assert wire == b"a NO [NOPERM] Permission denied\r\n"
    monkeypatch.undo()
    assert (await store.get_mailbox(bob, "Team")).messages == 0


async def test_copy_drops_flags_revoked_between_lookup_and_write(
    ctx: TestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 4314 §4: flags without their right are dropped, with the rights of the write."""
    bob = await _bobs_team(ctx, "lriw")
    user = ctx.require_user()
    await ctx.store.append(user.id, "INBOX", [message()], ctx.origin)
    outcome, _ = await ctx.do(b"s SELECT INBOX")
    assert outcome.status == "OK"
    outcome, _ = await ctx.do(b"f STORE 1 +FLAGS (\\Flagged)")
    assert outcome.status == "OK"
    store = ctx.store
    real = store.get_mailbox

    async def lookup_then_revoke(user_id: int, name: str) -> MailboxInfo:
        info = await real(user_id, name)
        await store.set_acl(bob, "Team", "alice", acl.parse_modification("-w"), ctx.origin)
        return info

    monkeypatch.setattr(store, "get_mailbox", lookup_then_revoke)
    outcome, wire = await ctx.do(b"c COPY 1 " + TEAM)
    monkeypatch.undo()
    assert outcome.status == "OK", wire
    team = await store.get_mailbox(bob, "Team")
    rows = await store.fetch_plain(team.id, [1], ("flags",))
    assert rows == [(1, "")]  # \Flagged needs w, revoked after the lookup
