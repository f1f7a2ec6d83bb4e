"""The push fan-out (imapd/fanout.py, imapd/pushshare.py): one commit, many listeners, each
told in its own terms. Listeners whose views are alike share one rendering; these tests put
listeners with different views and modes on one mailbox and check every one's bytes:
RFC 3501 §7.3.1 (EXISTS in the session's own numbering), §2.3.2 (\\Recent: "the first session
to be notified", exactly one), RFC 5465 §5.2 (MessageNew's FETCH), §6.1.2 (selected-delayed
holds EXPUNGE outside IDLE, so that session numbers one message more), RFC 7162 §3.1.4.1
(MODSEQ under CONDSTORE), RFC 9051 Appendix E items 12 and 21 (no RECENT; UID in unsolicited
FETCH), RFC 9586 §3.3 (UIDFETCH under UIDONLY)."""

from __future__ import annotations

import asyncio
import re

from imapd.fanout import Fanout
from store.api import NewMessage
from store.changes import Origin
from tests.helpers.server import RunningServer
from tests.rawclient import RawClient

NOTIFY = "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))"


def _pushed(c: RawClient, lines: int) -> list[str]:
    out = [c.response() for _ in range(lines)]
    assert c.quiet(0.3) == b"", out  # nothing more than expected
    return out


def _listener(server: RunningServer, *setup: str) -> RawClient:
    c = server.raw()
    for i, command in enumerate(setup):
        c.ok(f"s{i}", command)
    return c


def test_one_commit_each_listener_its_own_view(server: RunningServer) -> None:
    w = server.raw()
    w.ok("w1", "CREATE Other")
    w.append("w2", "INBOX", "Subject: 1\r\n\r\none\r\n")
    w.append("w3", "INBOX", "Subject: 2\r\n\r\ntwo\r\n")
    # r1 selects first: \Recent of UIDs 1 and 2 is its (RFC 3501 §2.3.2).
    r1 = _listener(server, "SELECT INBOX", NOTIFY)
    r2 = _listener(server, "SELECT INBOX", NOTIFY)
    r3 = _listener(server, "SELECT INBOX", NOTIFY)  # same view as r2: shared bytes
    r4 = _listener(server, "SELECT INBOX", NOTIFY)  # (one of the three may claim \Recent)
    cs = _listener(
        server,
        "ENABLE CONDSTORE",
        "SELECT INBOX",
        "NOTIFY SET (selected (MessageNew (UID FLAGS MODSEQ) MessageExpunge))",
    )
    v2 = _listener(server, "ENABLE IMAP4rev2", "SELECT INBOX", NOTIFY)
    uo = _listener(
        server,
        "ENABLE IMAP4rev2 UIDONLY",
        "SELECT INBOX",
        "NOTIFY SET (selected (MessageNew (FLAGS) MessageExpunge))",
    )
    dl = _listener(
        server,
        "SELECT INBOX",
        "NOTIFY SET (selected-delayed (MessageNew (UID FLAGS) MessageExpunge))",
    )
    idle = _listener(server, "SELECT INBOX")
    idle.line("i1 IDLE")
    assert idle.response().startswith("+ ")

    # UID 1 leaves (MOVE: no flag change first): told at once, except to `dl` (§6.1.2).
    mover = _listener(server, "SELECT INBOX")  # w selects nothing: no claim of its own
    mover.ok("m1", "UID MOVE 1 Other")
    for c in (r1, r2, r3, r4, cs, v2, idle):
        assert _pushed(c, 1) == ["* 1 EXPUNGE"]
    assert _pushed(uo, 1) == ["* VANISHED 1"]  # RFC 9586 §3.4
    assert dl.quiet(0.3) == b""

    w.append("w5", "INBOX", "Subject: 3\r\n\r\nthree\r\n")  # UID 3
    got = {
        "r1": _pushed(r1, 3),
        "r2": _pushed(r2, 3),
        "r3": _pushed(r3, 3),
        "r4": _pushed(r4, 3),
        "cs": _pushed(cs, 3),
        "dl": _pushed(dl, 3),
        "idle": _pushed(idle, 2),
        "v2": _pushed(v2, 2),
        "uo": _pushed(uo, 2),
    }
    # Shared: the listeners in the common shape (not `dl`, not the \Recent claimer) were
    # served from fewer renderings than listeners (r2 and r3 alike, at least).
    shared = server.server.fanout.latest
    assert shared is not None and shared.uids == [3]
    assert shared.served >= 6 and len(shared.lines) < shared.served
    # \Recent of UID 3: exactly one read-write IMAP4rev1 listener is first (§2.3.2). r1
    # holds UID 2's; a listener that got UID 3's says so in its RECENT and its FLAGS.
    claimed = {}
    for name in ("r1", "r2", "r3", "r4", "cs", "dl", "idle"):
        exists, recent = got[name][0], got[name][1]
        m = re.fullmatch(r"\* (\d+) RECENT", recent)
        assert m, got[name]
        held = 1 if name == "r1" else 0
        count = int(m.group(1)) - held
        assert count in (0, 1), got[name]
        claimed[name] = count == 1
        assert exists == ("* 3 EXISTS" if name == "dl" else "* 2 EXISTS"), got[name]
    assert sum(claimed.values()) == 1, (claimed, got)

    def flags(name: str) -> str:
        return "(\\Recent)" if claimed[name] else "()"

    for name in ("r1", "r2", "r3", "r4"):
        assert got[name][2] == f"* 2 FETCH (UID 3 FLAGS {flags(name)})", got[name]
    assert re.fullmatch(
        rf"\* 2 FETCH \(UID 3 FLAGS {re.escape(flags('cs'))} MODSEQ \(\d+\)\)", got["cs"][2]
    ), got["cs"]
    # `dl` still numbers the moved message: UID 3 is its message 3.
    assert got["dl"][2] == f"* 3 FETCH (UID 3 FLAGS {flags('dl')})", got["dl"]
    assert got["v2"] == ["* 2 EXISTS", "* 2 FETCH (UID 3 FLAGS ())"]
    assert got["uo"] == ["* 2 EXISTS", "* 3 UIDFETCH (FLAGS () UID 3)"]  # rev2: UID too
    # Each keeps its own numbering afterwards: message 2 (3 for `dl`) is UID 3.
    assert "* 2 FETCH (UID 3)" in r2.ok("r9", "FETCH 2 UID")
    idle.line("DONE")
    assert idle.until_tagged("i1")[-1].startswith("i1 OK")
    assert "* 2 FETCH (UID 3)" in idle.ok("i9", "FETCH 2 UID")
    for c in (w, mover, r1, r2, r3, r4, cs, v2, uo, dl, idle):
        c.close()


def test_new_keyword_and_several_messages(server: RunningServer) -> None:
    """A message bringing a keyword the view has not seen is told with FLAGS first (RFC 3501
    §7.2.6) by every listener, and a COPY of two messages is one EXISTS and two FETCHes,
    numbered after each listener's own count."""
    w = server.raw()
    w.ok("w0", "CREATE Src")
    w.append("w1", "Src", "Subject: a\r\n\r\na\r\n")
    w.append("w2", "Src", "Subject: b\r\n\r\nb\r\n")
    a = _listener(server, "SELECT INBOX", NOTIFY)
    b = _listener(server, "SELECT INBOX", NOTIFY)
    w.append("w3", "INBOX (Urgent)", "Subject: u\r\n\r\nu\r\n")
    out = _pushed(a, 4)
    assert out[0].startswith("* FLAGS (") and "Urgent" in out[0], out
    assert out[1] == "* 1 EXISTS"
    assert out[3].startswith("* 1 FETCH (UID 1 FLAGS (Urgent")
    assert _pushed(b, 4)[0] == out[0]
    w.ok("w4", "SELECT Src")
    w.ok("w5", "COPY 1:2 INBOX")
    firsts = 0
    for c in (a, b):
        lines = _pushed(c, 4)
        assert lines[0] == "* 3 EXISTS"
        assert re.fullmatch(r"\* [0-3] RECENT", lines[1]), lines
        mine = lines[2].endswith("(\\Recent))")
        assert lines[2] == "* 2 FETCH (UID 2 FLAGS (%s))" % ("\\Recent" if mine else ""), lines
        assert lines[3] == "* 3 FETCH (UID 3 FLAGS (%s))" % ("\\Recent" if mine else ""), lines
        firsts += mine
    assert firsts == 1  # RFC 3501 §2.3.2: one session is first for the copies


def test_items_read_from_the_store_beside_shared_ones(server: RunningServer) -> None:
    """RFC 5465 §5.2: MessageNew's FETCH items are the listener's own. One listener asks
    for ENVELOPE (read from the store, not in the change), the others for UID FLAGS (shared
    bytes): each gets exactly its items."""
    w = server.raw()
    env = _listener(
        server, "SELECT INBOX", "NOTIFY SET (selected (MessageNew (UID ENVELOPE) MessageExpunge))"
    )
    plain = [_listener(server, "SELECT INBOX", NOTIFY) for _ in range(3)]
    w.append("w1", "INBOX", "Subject: pushed\r\n\r\nbody\r\n")
    lines = _pushed(env, 3)
    assert lines[0] == "* 1 EXISTS"
    assert re.fullmatch(r'\* 1 FETCH \(UID 1 ENVELOPE \(NIL "pushed" .*\)\)', lines[2]), lines
    for c in plain:
        got = _pushed(c, 3)
        assert got[0] == "* 1 EXISTS"
        assert re.fullmatch(r"\* 1 FETCH \(UID 1 FLAGS \((\\Recent)?\)\)", got[2]), got


def test_listeners_behind_several_commits_get_them_in_one_push(server: RunningServer) -> None:
    """Coalescing (imapd/pushshare.py): three APPENDs committed as one group are published
    together, so every listener holds three new messages when its turn comes, as one late
    in a long fan-out does. Each gets them in one push, exactly as told one by one would
    end: one EXISTS with the last count (RFC 3501 §7.3.1), RECENT, then MessageNew's FETCH
    for each message in order (RFC 5465 §5.2), and exactly one listener is first for all
    three (RFC 3501 §2.3.2). The listeners in the same view share one rendering."""
    w = server.raw()
    w.append("w1", "INBOX", "Subject: 0\r\n\r\nzero\r\n")  # UID 1, \\Recent to r[0]
    r = [_listener(server, "SELECT INBOX", NOTIFY) for _ in range(4)]
    cs = _listener(
        server,
        "ENABLE CONDSTORE",
        "SELECT INBOX",
        "NOTIFY SET (selected (MessageNew (UID FLAGS MODSEQ) MessageExpunge))",
    )
    idle = _listener(server, "SELECT INBOX")
    idle.line("i1 IDLE")
    assert idle.response().startswith("+ ")
    alice = server.call(server.server.store.get_user("alice")).id

    async def three_at_once() -> None:  # one group commit (store/sqlite/groupcommit.py)
        store = server.server.store
        await asyncio.gather(
            *(
                store.append(
                    alice,
                    "INBOX",
                    [NewMessage(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())],
                    Origin(service="test"),
                )
                for i in (1, 2, 3)
            )
        )

    server.call(three_at_once())
    got = {f"r{i}": _pushed(c, 5) for i, c in enumerate(r)}
    got["cs"] = _pushed(cs, 5)
    got["idle"] = _pushed(idle, 2)
    firsts = []
    for name, lines in got.items():
        assert lines[0] == "* 4 EXISTS", (name, lines)
        m = re.fullmatch(r"\* (\d+) RECENT", lines[1])
        assert m, (name, lines)
        count = int(m.group(1)) - (1 if name == "r0" else 0)  # r0 holds UID 1's
        assert count in (0, 3), (name, lines)  # all three, or none of them
        if count:
            firsts.append(name)
        if name == "idle":
            continue
        flags = "\\Recent" if count else ""
        for seq, line in zip((2, 3, 4), lines[2:], strict=True):
            if name == "cs":
                assert re.fullmatch(
                    rf"\* {seq} FETCH \(UID {seq} FLAGS \({re.escape(flags)}\) MODSEQ \(\d+\)\)",
                    line,
                ), (name, lines)
            else:
                assert line == f"* {seq} FETCH (UID {seq} FLAGS ({flags}))", (name, lines)
    assert len(firsts) == 1, got
    # The run of three was rendered once for the listeners alike (r1..r3 at least).
    shared = server.server.fanout.latest
    assert shared is not None and shared.uids == [2, 3, 4]
    assert shared.served >= 3 and len(shared.lines) < shared.served
    # Each view stays exact: message 4 is UID 4, and the next commit is told as message 5.
    assert "* 4 FETCH (UID 4)" in r[1].ok("f1", "FETCH 4 UID")
    w.append("w2", "INBOX", "Subject: 4\r\n\r\nfour\r\n")
    assert _pushed(r[2], 3)[0] == "* 5 EXISTS"
    for c in (w, *r, cs, idle):
        c.close()


def test_commands_counted_only_while_they_run(server: RunningServer) -> None:
    """`Fanout.commands` leaves the loop idle between slices while a command runs
    (imapd/fanout.py, "The writer first"): a session in IDLE or under NOTIFY, waiting,
    is no command running, and every command, answered OK, NO or BAD, or cut off by a
    BYE, is counted out again; otherwise the fan-out would slow down for good."""
    fanout = server.server.fanout
    idle = _listener(server, "SELECT INBOX")
    idle.line("i1 IDLE")
    assert idle.response().startswith("+ ")
    notify = _listener(server, "SELECT INBOX", NOTIFY)
    c = server.raw()
    c.ok("c1", "SELECT INBOX")
    c.line("c2 SELECT Nowhere")
    assert c.until_tagged("c2")[-1].startswith("c2 NO")
    c.line("c3 FETCH")
    assert c.until_tagged("c3")[-1].startswith("c3 BAD")
    c.append("c4", "INBOX", "Subject: x\r\n\r\nx\r\n")
    assert _pushed(notify, 3)[0] == "* 1 EXISTS"
    assert server.call(_commands(fanout)) == 0
    c.line("c5 LOGOUT")
    assert c.until_tagged("c5")[-1].startswith("c5 OK")
    idle.line("DONE")
    assert idle.until_tagged("i1")[-1].startswith("i1 OK")
    assert server.call(_commands(fanout)) == 0
    for x in (idle, notify, c):
        x.close()


async def _commands(fanout: Fanout) -> int:
    """Read on the server's loop, between its turns."""
    return fanout.commands
