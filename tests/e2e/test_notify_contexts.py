"""NOTIFY (RFC 5465) with RFC 5267 search contexts: the items that apply now that
CONTEXT=SEARCH and CONTEXT=SORT are offered (NOTIFY.md N21, N51, N62, N63, N69 and §7; our
readings in docs/notify.md and docs/context.md). Two real sessions on a real server: B
changes the mailbox, A (under NOTIFY, no command running) receives the pushed responses."""

from __future__ import annotations

import re

from tests.helpers.server import RunningServer
from tests.rawclient import RawClient


def _pair(server: RunningServer, notify: str) -> tuple[RawClient, RawClient]:
    a, b = server.raw(), server.raw()
    a.ok("a0", "SELECT INBOX")
    a.ok("a1", f"NOTIFY SET (selected ({notify}))")
    return a, b


def _pushed(a: RawClient, n: int) -> list[str]:
    return [a.response() for _ in range(n)]


def test_capabilities_advertise_contexts(server: RunningServer) -> None:
    """RFC 5267 §4.1: CONTEXT=SEARCH and CONTEXT=SORT in the capabilities; "Servers
    advertising CONTEXT=SORT also advertise the SORT capability"."""
    caps = server.raw().ok("c0", "CAPABILITY")[0].split()
    assert {"CONTEXT=SEARCH", "CONTEXT=SORT", "SORT", "ESORT", "NOTIFY"} <= set(caps), caps


def test_update_fetch_atts_new_message(server: RunningServer) -> None:
    """N21 (RFC 5465 §8: modifier-update = "UPDATE" ["(" fetch-att *(SP fetch-att) ")"]),
    §7 ("FETCH attributes be returned when a new message is added to the context result
    set"; "the EXISTS response MUST precede any FETCH responses, and together they MUST
    precede the ESEARCH response"), N62 (§5.2: "the EXISTS response MUST precede the ESEARCH
    response"), N63 (§5.2: "These attributes SHOULD be combined into a single FETCH response.
    The server SHOULD avoid sending duplicate data.")."""
    a, b = _pair(server, "MessageNew (UID) MessageExpunge")
    out = a.ok(
        "a2",
        'UID SEARCH RETURN (COUNT UPDATE (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])) FROM "boss"',
    )
    assert out[0] == '* ESEARCH (TAG "a2") UID COUNT 0', out
    b.append("b1", "INBOX", "From: boss@example.org\r\nSubject: good morning\r\n\r\nhi\r\n")
    got = _pushed(a, 4)
    assert got[:2] == ["* 1 EXISTS", "* 1 RECENT"], got
    fetch = got[2]
    assert fetch.startswith("* 1 FETCH (") and "BODY[HEADER.FIELDS (SUBJECT)]" in fetch, got
    assert "Subject: good morning" in fetch and fetch.count("UID 1") == 1, fetch  # one FETCH
    assert got[3] == '* ESEARCH (TAG "a2") UID ADDTO (0 1)', got
    assert a.quiet() == b""
    # A new message outside the context: NOTIFY's FETCH alone, no ESEARCH, no header.
    b.append("b2", "INBOX", "From: someone@example.org\r\nSubject: other\r\n\r\nhi\r\n")
    assert _pushed(a, 3) == ["* 2 EXISTS", "* 2 RECENT", "* 2 FETCH (UID 2)"]
    assert a.quiet() == b""


def test_update_fetch_atts_without_notify_fetch(server: RunningServer) -> None:
    """§7 without NOTIFY's own attributes: the context's alone, in the FETCH that follows
    the EXISTS and precedes the ADDTO; a message appended by this very session gets the
    EXISTS and the ADDTO but no FETCH (§5.2: "A FETCH response SHOULD NOT be generated for a
    new message created by the client on this particular connection")."""
    a, b = _pair(server, "MessageNew MessageExpunge")
    a.ok("a2", "SEARCH RETURN (UPDATE (FLAGS)) ALL")
    b.append("b1", "INBOX", "Subject: 1\r\n\r\n")
    assert _pushed(a, 4) == [
        "* 1 EXISTS",
        "* 1 RECENT",
        "* 1 FETCH (FLAGS (\\Recent))",
        '* ESEARCH (TAG "a2") ADDTO (0 1)',
    ]
    out = a.command("a3", "APPEND INBOX {12+}\r\nSubject: 2\r\n")
    assert out == ["* 2 EXISTS", "* 2 RECENT", '* ESEARCH (TAG "a2") ADDTO (0 2)', out[-1]], out
    assert out[-1].startswith("a3 OK"), out


def test_flag_change_fetch_then_esearch_no_update_fetch(server: RunningServer) -> None:
    """N51 (RFC 5465 §5.1: "an ESEARCH ADDTO or ESEARCH REMOVEFROM will also be generated
    ... the FETCH response MUST precede the ESEARCH response") and §7 ("No untagged FETCH
    response SHOULD be returned if a message becomes a member of UPDATE SEARCH due to flag
    or annotation changes": the context's BODY is not fetched)."""
    b0 = server.raw()
    b0.append("p1", "INBOX", "Subject: 1\r\n\r\nbody\r\n")
    a, b = _pair(server, "MessageNew (UID) MessageExpunge FlagChange")
    a.ok("a2", "UID SEARCH RETURN (UPDATE (BODY.PEEK[TEXT])) FLAGGED")
    b.ok("b1", "SELECT INBOX")
    b.ok("b2", "STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert _pushed(a, 2) == [
        "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))",
        '* ESEARCH (TAG "a2") UID ADDTO (0 1)',
    ]
    b.ok("b3", "STORE 1 -FLAGS.SILENT (\\Flagged)")
    assert _pushed(a, 2) == [
        "* 1 FETCH (UID 1 FLAGS (\\Recent))",
        '* ESEARCH (TAG "a2") UID REMOVEFROM (0 1)',
    ]
    assert a.quiet() == b""


def test_expunge_removefrom_before_expunge(server: RunningServer) -> None:
    """N69 (RFC 5465 §5.3: "an ESEARCH REMOVEFROM will also be generated") with RFC 5267
    §4.3.4: "a REMOVEFROM containing message sequence numbers removed as a result of those
    messages being expunged MUST be sent prior to the expunge notification itself"; for a
    SORT context the position is the one the message had."""
    b0 = server.raw()
    for n in (1, 2, 3):
        b0.append(f"p{n}", "INBOX", f"Subject: {n}\r\nDate: {4 - n} Jan 2023 10:00 +0000\r\n\r\n")
    a, b = _pair(server, "MessageNew MessageExpunge")
    assert a.ok("a2", "SEARCH RETURN (UPDATE ALL) ALL")[0] == '* ESEARCH (TAG "a2") ALL 1:3'
    assert a.ok("a3", "SORT RETURN (UPDATE ALL) (DATE) UTF-8 ALL")[0] == (
        '* ESEARCH (TAG "a3") ALL 3,2,1'
    )
    b.ok("b1", "SELECT INBOX")
    b.ok("b2", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("b3", "EXPUNGE")
    assert _pushed(a, 3) == [
        '* ESEARCH (TAG "a2") REMOVEFROM (0 2)',
        '* ESEARCH (TAG "a3") REMOVEFROM (2 2)',
        "* 2 EXPUNGE",
    ]
    assert a.quiet() == b""


def test_flag_updates_wait_without_flagchange(server: RunningServer) -> None:
    """RFC 5465 §5.1 ties a context's flag-caused ESEARCH to the FlagChange FETCH: without
    FlagChange in the selected group neither is pushed (§4: only the registered events);
    both come at the next command, FETCH first (docs/context.md "Flag changes")."""
    b0 = server.raw()
    b0.append("p1", "INBOX", "Subject: 1\r\n\r\n")
    a, b = _pair(server, "MessageNew MessageExpunge")
    a.ok("a2", "SEARCH RETURN (UPDATE) SEEN")
    b.ok("b1", "SELECT INBOX")
    b.ok("b2", "STORE 1 +FLAGS.SILENT (\\Seen)")
    assert a.quiet(0.5) == b""
    out = a.ok("a3", "NOOP")
    assert out[:2] == [
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))",
        '* ESEARCH (TAG "a2") ADDTO (0 1)',
    ], out


def test_sort_context_positions_under_notify(server: RunningServer) -> None:
    """RFC 5267 §4.3.3: a SORT context's ADDTO inserts "at the given context position",
    "the first result in the set will occupy the new context position after insertion";
    pushed under NOTIFY after the EXISTS (N62)."""
    b0 = server.raw()
    for n, day in ((1, 5), (2, 1)):
        b0.append(f"p{n}", "INBOX", f"Subject: {n}\r\nDate: {day} Jan 2023 10:00 +0000\r\n\r\n")
    a, b = _pair(server, "MessageNew MessageExpunge")
    assert a.ok("a2", "UID SORT RETURN (UPDATE ALL) (DATE) UTF-8 ALL")[0] == (
        '* ESEARCH (TAG "a2") UID ALL 2,1'
    )
    b.append("b1", "INBOX", "Subject: 3\r\nDate: 3 Jan 2023 10:00 +0000\r\n\r\n")
    got = _pushed(a, 3)
    assert got[0] == "* 3 EXISTS" and got[2] == '* ESEARCH (TAG "a2") UID ADDTO (2 3)', got
    # The client's list, updated as §4.3.3 says, is the sort order a new SORT returns.
    fresh = a.ok("a3", "UID SORT RETURN (ALL) (DATE) UTF-8 ALL")[0]
    assert re.fullmatch(r'\* ESEARCH \(TAG "a3"\) UID ALL 2:3,1', fresh), fresh
