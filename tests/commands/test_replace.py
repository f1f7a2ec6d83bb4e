"""REPLACE's handler without a socket (tests/helpers/handlers.py): its Outcome carries the
untagged APPENDUID; the store holds the new message and not the old one."""

from __future__ import annotations

from imapd.protocol.responses import UntaggedStatus
from tests.helpers.handlers import TestContext, message


async def test_replace_outcome_then_expunge(ctx: TestContext) -> None:
    """The APPENDUID goes in an untagged OK (RFC 8508 §4.3), not in the tagged OK."""
    user = ctx.require_user()
    await ctx.store.append(user.id, "INBOX", [message("a"), message("b")], ctx.origin)
    await ctx.do(b"s SELECT INBOX")
    raw = b"Subject: c\r\n\r\n"
    line = b"r REPLACE 1 Archive (\\Seen) {%d+}\r\n%s" % (len(raw), raw)
    outcome = await ctx.run(line)
    assert outcome.status == "OK" and outcome.code is None  # no CONDSTORE: no HIGHESTMODSEQ
    (untagged,) = outcome.responses
    assert isinstance(untagged, UntaggedStatus) and untagged.code is not None
    assert untagged.code.startswith("APPENDUID ") and untagged.code.endswith(" 1")
    wire = await ctx.finish(line, outcome)
    # The EXPUNGE is the session's update from the store's change, flushed after these
    # (tests/transcripts/replace.imap checks the order on the wire).
    assert wire.startswith(b"* OK [APPENDUID ") and wire.endswith(b"r OK REPLACE completed\r\n")
    archive = await ctx.store.get_mailbox(user.id, "Archive")
    (record,) = await ctx.store.fetch(archive.id, [1], content=True)
    assert record.content == raw and record.flags == ("\\Seen",)
    assert (await ctx.store.get_mailbox(user.id, "INBOX")).messages == 1


async def test_replace_refusals_change_nothing(ctx: TestContext) -> None:
    user = ctx.require_user()
    await ctx.store.append(user.id, "INBOX", [message("a")], ctx.origin)
    raw = b"Subject: c\r\n\r\n"
    await ctx.do(b"e EXAMINE INBOX")
    _, wire = await ctx.do(b"r1 REPLACE 1 INBOX {%d+}\r\n%s" % (len(raw), raw))
    assert wire == b"r1 NO [READ-ONLY] Mailbox is read-only\r\n"
    await ctx.do(b"s SELECT INBOX")
    _, wire = await ctx.do(b"r2 REPLACE 1 Nowhere {%d+}\r\n%s" % (len(raw), raw))
    assert wire.startswith(b"r2 NO [TRYCREATE]")
    _, wire = await ctx.do(b"r3 UID REPLACE 5 INBOX {%d+}\r\n%s" % (len(raw), raw))
    assert wire.startswith(b"r3 NO [NONEXISTENT]")
    _, wire = await ctx.do(b"r4 REPLACE 1 INBOX {0+}\r\n")
    assert wire.startswith(b"r4 BAD")
    inbox = await ctx.store.get_mailbox(user.id, "INBOX")
    assert (inbox.messages, inbox.uidnext) == (1, 2)
