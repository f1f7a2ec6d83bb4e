"""Handlers run without a socket (tests/helpers/handlers.py): each returns an Outcome whose
effects `conn.finish` applies; the store they changed is a real SQLite file."""

from __future__ import annotations

from dataclasses import replace

from imapd.commands.base import After
from imapd.listening import notify_updates
from imapd.protocol.connection import IdleDone, SaslResponse
from imapd.protocol.framing import Mode
from imapd.protocol.state import Authenticated, Logout, Selected, State
from imapd.selected import SelectedView
from store.api import NewMessage
from tests.helpers.handlers import TestContext, message


def state(ctx: TestContext) -> State:
    """The connection's state now (a call, so mypy does not carry an earlier narrowing)."""
    return ctx.conn.state


def listening(ctx: TestContext) -> bool:
    return ctx.notify.active


def view_of(ctx: TestContext) -> SelectedView | None:
    return ctx.view


async def select_inbox(ctx: TestContext, messages: int = 2) -> None:
    user = ctx.require_user()
    for i in range(messages):
        await ctx.store.append(user.id, "INBOX", [message(f"m{i}")], ctx.origin)
    outcome, _ = await ctx.do(b"s SELECT INBOX")
    assert outcome.status == "OK"


async def test_select_enters_the_selected_state_through_its_outcome(ctx: TestContext) -> None:
    user = ctx.require_user()
    await ctx.store.append(user.id, "INBOX", [message("a"), message("b")], ctx.origin)
    outcome = await ctx.run(b"s SELECT INBOX")
    # The handler changed nothing of the connection: the Outcome carries it.
    assert ctx.view is None and ctx.conn.state == Authenticated("alice")
    assert outcome.state == Selected("alice", "INBOX", False)
    assert outcome.selection is not None and outcome.selection.view.uids == [1, 2]
    wire = await ctx.finish(b"s SELECT INBOX", outcome)
    assert b"* 2 EXISTS\r\n" in wire
    assert wire.endswith(b"s OK [READ-WRITE] SELECT completed\r\n")
    assert state(ctx) == Selected("alice", "INBOX", False)
    view = view_of(ctx)
    assert view is not None and ctx.subscription.mailboxes == {view.mailbox_id}


async def test_a_failed_select_leaves_the_selected_state(ctx: TestContext) -> None:
    """RFC 3501 §6.3.1: "if a mailbox is selected and a SELECT command that fails is
    attempted, no mailbox is selected." (The [CLOSED] of RFC 7162 §3.2.11 comes first.)"""
    await select_inbox(ctx, 1)
    outcome, wire = await ctx.do(b"s2 SELECT Nowhere")
    assert outcome.status == "NO" and outcome.state == Authenticated("alice")
    assert wire.startswith(b"* OK [CLOSED]")
    assert b"s2 NO [NONEXISTENT]" in wire
    assert ctx.conn.state == Authenticated("alice") and ctx.view is None


async def test_examine_is_read_only_and_store_is_refused(ctx: TestContext) -> None:
    await ctx.store.append(ctx.require_user().id, "INBOX", [message()], ctx.origin)
    outcome, wire = await ctx.do(b"e EXAMINE INBOX")
    assert outcome.state == Selected("alice", "INBOX", True)
    assert wire.endswith(b"e OK [READ-ONLY] EXAMINE completed\r\n")
    _, wire = await ctx.do(b"t STORE 1 +FLAGS (\\Flagged)")
    assert wire == b"t NO [READ-ONLY] Mailbox is read-only\r\n"


async def test_fetch_renders_lines_and_body_sets_seen(ctx: TestContext) -> None:
    await select_inbox(ctx)
    _, wire = await ctx.do(b"f FETCH 1:* (UID FLAGS)")
    assert b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n" in wire
    assert b"* 2 FETCH (UID 2 FLAGS (\\Recent))\r\n" in wire
    assert wire.endswith(b"f OK FETCH completed\r\n")
    _, wire = await ctx.do(b"g FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: m1" in wire
    assert b"\\Seen" in wire  # RFC 3501 §6.4.5: the flag is set, and reported
    view = ctx.require_view()
    (record,) = await ctx.store.fetch(view.mailbox_id, [2])
    assert "\\Seen" in record.flags


async def test_store_writes_the_flag_and_answers_with_fetch(ctx: TestContext) -> None:
    await select_inbox(ctx)
    _, wire = await ctx.do(b"t STORE 1 +FLAGS (\\Flagged)")
    assert b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n" in wire
    assert wire.endswith(b"t OK STORE completed\r\n")
    view = ctx.require_view()
    (record,) = await ctx.store.fetch(view.mailbox_id, [1])
    assert record.flags == ("\\Flagged",)


async def test_search_and_save_keep_dollar_on_the_context(ctx: TestContext) -> None:
    await select_inbox(ctx, 3)
    await ctx.do(b"t STORE 2 +FLAGS (\\Seen)")
    _, wire = await ctx.do(b"s SEARCH UNSEEN")
    assert b"* SEARCH 1 3\r\n" in wire
    outcome, _ = await ctx.do(b"s2 SEARCH RETURN (SAVE) UNSEEN")
    assert outcome.status == "OK"
    assert ctx.saved_search == [1, 3]  # RFC 5182 §2.1, as UIDs
    _, wire = await ctx.do(b"f FETCH $ (UID)")
    assert b"* 1 FETCH (UID 1)" in wire and b"* 3 FETCH (UID 3)" in wire
    assert b"* 2 FETCH" not in wire


async def test_append_writes_to_the_store(ctx: TestContext) -> None:
    raw = b"Subject: appended\r\n\r\nhi\r\n"
    line = b"a APPEND Archive (\\Seen) {%d+}\r\n%s" % (len(raw), raw)
    outcome, wire = await ctx.do(line)
    assert outcome.status == "OK" and outcome.state is None
    assert outcome.code is not None and outcome.code.startswith("APPENDUID ")
    assert wire.startswith(b"a OK [APPENDUID ")
    mailbox = await ctx.store.get_mailbox(ctx.require_user().id, "Archive")
    (record,) = await ctx.store.fetch(mailbox.id, [1], content=True)
    assert record.content == raw and record.flags == ("\\Seen",)


async def test_append_to_a_missing_mailbox_says_trycreate(ctx: TestContext) -> None:
    """RFC 3501 §6.3.11: "the server MUST send the response code "[TRYCREATE]" as the
    prefix of the text of the tagged NO response"."""
    raw = b"Subject: x\r\n\r\n"
    _, wire = await ctx.do(b"a APPEND Nowhere {%d+}\r\n%s" % (len(raw), raw))
    assert wire.startswith(b"a NO [TRYCREATE]")


async def test_idle_asks_for_done_through_the_core(ctx: TestContext) -> None:
    await select_inbox(ctx, 1)
    outcome, wire = await ctx.do(b"i IDLE")
    assert outcome.mode is Mode.IDLE
    assert wire == b"+ idling\r\n"  # no tagged reply yet (RFC 2177 §3)
    ctx.conn.receive_data(b"DONE\r\n")
    assert isinstance(ctx.conn.next_event(), IdleDone)


async def test_notify_registers_and_reports_another_mailbox(ctx: TestContext) -> None:
    await select_inbox(ctx, 1)
    _, wire = await ctx.do(b"n NOTIFY SET (personal (MessageNew MessageExpunge))")
    assert wire.endswith(b"n OK NOTIFY completed\r\n")
    assert ctx.notify.active and ctx.notify.sub is not None
    user = ctx.require_user()
    other = NewMessage(b"Subject: elsewhere\r\n\r\n")
    await ctx.store.append(user.id, "Archive", [other], replace(ctx.origin, session="other"))
    updates = await notify_updates(ctx)
    (status,) = updates
    line = ctx.conn.send([status])
    assert line.startswith(b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ')
    # RFC 5465 §5.8: "It MUST notify these clients by sending an untagged "OK
    # [NOTIFICATIONOVERFLOW]" response and behave as if a NOTIFY NONE command had just been
    # received." (here: a client that stops reading)
    await ctx.store.append(user.id, "Archive", [other], replace(ctx.origin, session="other"))
    ctx.unsent = ctx.config.notify_write_high_water + 1
    overflow = ctx.conn.send(await notify_updates(ctx))
    assert overflow.startswith(b"* OK [NOTIFICATIONOVERFLOW]") and not listening(ctx)
    _, wire = await ctx.do(b"n2 NOTIFY NONE")
    assert wire == b"n2 OK NOTIFY completed\r\n" and ctx.notify.sub is None


async def test_login_and_logout_change_state_only_through_the_outcome(
    ctx: TestContext,
) -> None:
    ctx.conn = type(ctx.conn)(ctx.config.limits)  # a fresh, not authenticated core
    ctx.user = None
    line = b"l LOGIN alice secret"
    outcome = await ctx.run(line)
    assert ctx.user is None  # nothing happened to the "session" yet
    assert outcome.state == Authenticated("alice") and outcome.user is not None
    assert outcome.code is not None and outcome.code.startswith("CAPABILITY ")
    wire = await ctx.finish(line, outcome)
    assert wire.startswith(b"l OK [CAPABILITY ")
    assert ctx.conn.state == Authenticated("alice")
    outcome = await ctx.run(b"o LOGOUT")
    assert outcome.state == Logout()
    wire = await ctx.finish(b"o LOGOUT", outcome)
    assert wire == b"* BYE Logging out\r\no OK LOGOUT completed\r\n"


async def test_authenticate_without_initial_response_resumes(ctx: TestContext) -> None:
    ctx.conn = type(ctx.conn)(ctx.config.limits)
    ctx.user = None
    line = b"a AUTHENTICATE PLAIN"
    outcome = await ctx.run(line)
    assert outcome.mode is Mode.SASL and outcome.resume is not None
    assert await ctx.finish(line, outcome) == b"+ \r\n"
    ctx.conn.receive_data(b"AGFsaWNlAHNlY3JldA==\r\n")  # \0alice\0secret
    event = ctx.conn.next_event()
    assert isinstance(event, SaslResponse)
    final = await outcome.resume(ctx, event.data)
    assert final.state == Authenticated("alice") and final.user is not None


async def test_starttls_and_compress_are_followups(ctx: TestContext) -> None:
    outcome, wire = await ctx.do(b"z COMPRESS DEFLATE")
    assert outcome.after is After.COMPRESS and wire == b"z OK DEFLATE active\r\n"


async def test_enable_utf8_reaches_the_core_through_the_outcome(ctx: TestContext) -> None:
    outcome = await ctx.run(b"e ENABLE UTF8=ACCEPT")
    assert outcome.utf8 is True and not ctx.conn.utf8
    await ctx.finish(b"e ENABLE UTF8=ACCEPT", outcome)
    assert ctx.conn.utf8


async def test_fetch_writes_seen_once_for_all_its_batches(ctx: TestContext) -> None:
    """One non-PEEK FETCH over more messages than one batch (FETCH_BATCH) marks them
    \\Seen in one write: one FlagsChanged with one modseq, not one per batch."""
    from imapd.commands.fetch import FETCH_BATCH
    from store.changes import FlagsChanged

    user = ctx.require_user()
    count = FETCH_BATCH + 50
    await ctx.store.append(user.id, "INBOX", [message(f"m{i}") for i in range(count)], ctx.origin)
    await ctx.do(b"s SELECT INBOX")
    await ctx.do(b"t STORE 2 +FLAGS (\\Seen)")  # already seen: not written again
    ctx.subscription.drain()
    _, wire = await ctx.do(b"f FETCH 1:* (BODY[TEXT])")
    assert wire.count(b" FETCH (") == count
    assert wire.endswith(b"f OK FETCH completed\r\n")
    changes = [ch for ch in ctx.subscription.drain() if isinstance(ch, FlagsChanged)]
    assert len(changes) == 1
    (change,) = changes
    assert sorted(fc.uid for fc in change.changes) == [u for u in range(1, count + 1) if u != 2]
    assert len({fc.modseq for fc in change.changes}) == 1


async def test_fetch_of_a_message_gone_elsewhere_ends_expungeissued(ctx: TestContext) -> None:
    """RFC 5530 §3: EXPUNGEISSUED "Someone else has issued an EXPUNGE for the same
    mailbox": the data for the rest goes out, and the FETCH command's ending (held on the
    command object, FetchCommand.ending) says NO."""
    await select_inbox(ctx, 2)
    view = ctx.require_view()
    other = replace(ctx.origin, session="other")
    await ctx.store.store_flags(view.mailbox_id, [2], "+", ["\\Deleted"], other)
    await ctx.store.expunge(view.mailbox_id, other)
    outcome = await ctx.run(b"f FETCH 1:2 (BODY[TEXT])")
    assert outcome.status == "OK" and outcome.stream is not None  # not known yet
    wire = await ctx.finish(b"f FETCH 1:2 (BODY[TEXT])", outcome)
    assert b"* 1 FETCH (" in wire and b"* 2 FETCH (" not in wire
    assert wire.endswith(b"f NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n")
