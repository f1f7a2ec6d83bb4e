"""SORT, SORT=DISPLAY, ESORT and THREAD (RFC 5256, RFC 5957, RFC 5267 §3) end to end over
raw sessions against a real server: every sort key and REVERSE, ties by sequence number,
UID SORT, the ESEARCH forms of ESORT, both threading algorithms and UID THREAD, CHARSET as
SEARCH has it, and malformed commands answered BAD without harming the session."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.helpers.raw_session import Session
from tests.helpers.server import RunningServer


def message(
    subject: str | None,
    *,
    frm: str | None = "a@example.org",
    to: str | None = None,
    cc: str | None = None,
    date: str | None = None,
    mid: str | None = None,
    refs: str | None = None,
    irt: str | None = None,
    body: str = "body",
) -> str:
    fields = [
        ("From", frm),
        ("To", to),
        ("Cc", cc),
        ("Date", date),
        ("Subject", subject),
        ("Message-ID", mid),
        ("References", refs),
        ("In-Reply-To", irt),
    ]
    head = "".join(f"{k}: {v}\r\n" for k, v in fields if v is not None)
    return head + "\r\n" + body + "\r\n"


def append(s: Session, text: str, internaldate: str) -> None:
    data = text.encode()
    tag = "ap"
    s.raw.send(
        f'{tag} APPEND INBOX "{internaldate}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n"
    )
    assert s.raw.until_tagged(tag)[-1].startswith(f"{tag} OK")


#: Seven messages, appended in this order (UIDs 1..7, sequence numbers 1..7): subject, from,
#: to, cc, Date, body size (it sets the RFC822.SIZE order), INTERNALDATE (day, hour of Jan).
SORTABLE = [
    ("Re: Beta", '"Zed" <zed@x.org>', "bob@x.org", None, "2 Jan 2023 10:00 +0000", 3000, 3, 0),
    (
        "alpha",
        "Carol <carol@x.org>",
        '"=?utf-8?q?=C3=89mile?=" <e@x.org>',
        "k@x.org",
        "2 Jan 2023 09:00 -0200",
        1000,
        1,
        0,
    ),
    ("[list] Fwd: ALPHA (fwd)", "bea@x.org", "alice@x.org", "a@x.org", None, 5000, 2, 0),
    ("gamma", "alan@x.org", None, None, "1 Jan 2023 12:00 +0000", 0, 5, 0),
    (
        "beta",
        "=?utf-8?q?=C3=89va?= <eva@x.org>",
        "Ann <ann@x.org>",
        "b@x.org",
        "2 Jan 2023 11:00 +0000",
        2000,
        4,
        0,
    ),
    (None, "bob@x.org", "dan@x.org", None, "garbage date", 4000, 2, 12),
    ("alpha", "carol@x.org", "ann@x.org", "k@x.org", "2 Jan 2023 09:00 -0200", 6000, 1, 0),
]


@pytest.fixture
def sortable(server: RunningServer) -> Iterator[Session]:
    s = Session(server, "alice")
    for subject, frm, to, cc, date, pad, day, hour in SORTABLE:
        text = message(subject, frm=frm, to=to, cc=cc, date=date, body="x" * pad)
        append(s, text, f"0{day}-Jan-2023 {hour:02d}:00:00 +0000")
    s.ok("SELECT INBOX")
    yield s
    s.raw.close()


def test_capabilities(server: RunningServer) -> None:
    s = Session(server, "alice")
    caps = s.ok("CAPABILITY")[0].split()
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        assert cap in caps


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # ARRIVAL: INTERNALDATE; 2 and 7 arrived at the same second: sequence order
        ("ARRIVAL", "2 7 3 6 1 5 4"),
        ("REVERSE ARRIVAL", "4 5 1 6 3 2 7"),  # REVERSE keeps the implicit seq order
        # DATE: the Date header in UTC (2, 5, 7: 11:00Z); 3 has none and 6's is garbage:
        # their INTERNALDATEs (2 Jan 00:00Z, 12:00Z)
        ("DATE", "4 3 1 2 5 7 6"),
        # FROM: addr-mailbox of the first From address, case-insensitive
        ("FROM", "4 3 6 2 7 5 1"),
        # TO: addr-mailbox; 4 has no To: the empty string collates first
        ("TO", "4 3 5 7 1 6 2"),
        # CC: 1, 4 and 6 have none
        ("CC", "1 4 6 3 5 2 7"),
        ("SIZE", "4 2 5 1 6 3 7"),
        # SUBJECT: base subjects "", alpha x3, beta x2, gamma ("[list] Fwd: ALPHA (fwd)")
        ("SUBJECT", "6 2 3 7 1 5 4"),
        ("SUBJECT DATE", "6 3 2 7 1 5 4"),
        ("SUBJECT REVERSE DATE", "6 2 7 3 5 1 4"),
        ("REVERSE SUBJECT SIZE", "4 5 1 2 3 7 6"),
        # DISPLAYFROM (RFC 5957): decoded display name, else mailbox@host; "Carol" before
        # "carol@x.org"; =?utf-8?q?=C3=89va?= is Éva: E + U+0301 after casemap (RFC 5051)
        ("DISPLAYFROM", "4 3 6 2 7 5 1"),
        # DISPLAYTO: "" (4), alice@, Ann, ann@x.org, bob@, dan@, Émile
        ("DISPLAYTO", "4 3 5 7 1 6 2"),
    ],
)
def test_sort_keys(sortable: Session, criteria: str, expected: str) -> None:
    assert sortable.ok(f"SORT ({criteria}) UTF-8 ALL") == [f"* SORT {expected}"]


def test_sort_with_criteria_and_uid(sortable: Session) -> None:
    assert sortable.ok("SORT (SUBJECT) UTF-8 SUBJECT alpha") == ["* SORT 2 3 7"]
    assert sortable.ok("SORT (SIZE) UTF-8 NOT SUBJECT alpha 1:5") == ["* SORT 4 5 1"]
    sortable.ok("STORE 1:2 +FLAGS (\\Deleted)")
    sortable.ok("EXPUNGE")  # seq 1..5 are now UIDs 3..7
    assert sortable.ok("SORT (SIZE) UTF-8 ALL") == ["* SORT 2 3 4 1 5"]
    assert sortable.ok("UID SORT (SIZE) UTF-8 ALL") == ["* SORT 4 5 6 3 7"]
    assert sortable.ok("UID SORT (SIZE) UTF-8 UID 5:*") == ["* SORT 5 6 7"]
    # RFC 5256 §3 example: no match is an empty SORT response
    assert sortable.ok('SORT (SUBJECT) US-ASCII TEXT "not in mailbox"') == ["* SORT"]


def _untagged(s: Session, command: str) -> list[str]:
    return [re.sub(r'\(TAG "[^"]*"\)', '(TAG "X")', line) for line in s.ok(command)]


def test_esort(sortable: Session) -> None:
    """RFC 5267 §3: ESEARCH results in sort order, ranges only ascending (§3.2); MIN and MAX
    the first and last sorted."""
    assert _untagged(sortable, "SORT RETURN () (DATE) UTF-8 ALL") == [
        '* ESEARCH (TAG "X") ALL 4,3,1:2,5,7,6'
    ]
    assert _untagged(sortable, "SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL") == [
        '* ESEARCH (TAG "X") MIN 4 MAX 6 COUNT 7'
    ]
    assert _untagged(sortable, "UID SORT RETURN (COUNT ALL) (REVERSE SIZE) UTF-8 ALL") == [
        '* ESEARCH (TAG "X") UID COUNT 7 ALL 7,3,6,1,5,2,4'
    ]
    assert _untagged(sortable, "SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL") == [
        '* ESEARCH (TAG "X") ALL 2,7,3,6,1,5,4'
    ]
    # RFC 4731 §3.1: nothing matched: COUNT 0 and no MIN, MAX or ALL
    assert _untagged(sortable, "SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 SUBJECT nothing") == [
        '* ESEARCH (TAG "X") COUNT 0'
    ]
    # the tag is the command's own
    sortable.raw.line("e1 SORT RETURN (COUNT) (DATE) UTF-8 ALL")
    assert sortable.raw.until_tagged("e1")[0] == '* ESEARCH (TAG "e1") COUNT 7'


def test_charset(sortable: Session) -> None:
    assert sortable.ok('SORT (SIZE) "utf-8" SUBJECT gamma') == ["* SORT 4"]
    # RFC 3501 §6.4.4 (as SEARCH): an unknown charset is NO [BADCHARSET]
    refused = "NO [BADCHARSET (UTF-8 US-ASCII)]"
    assert sortable.status("SORT (SIZE) KOI8-R ALL").startswith(refused)
    assert sortable.status("THREAD REFERENCES ISO-2022-JP ALL").startswith(
        "NO [BADCHARSET (UTF-8 US-ASCII)]"
    )
    # non-ASCII criteria in UTF-8, as a literal; the To display name is encoded-word text
    assert sortable.ok("SORT (SIZE) UTF-8 TO {6+}\r\nÉmile") == ["* SORT 2"]
    assert sortable.ok('SORT (SIZE) "US-ASCII" TO mile') == ["* SORT 2"]


@pytest.mark.parametrize(
    "command",
    [
        "SORT",
        "SORT ",
        "SORT () UTF-8 ALL",
        "SORT (SUBJECT UTF-8 ALL",
        "SORT SUBJECT UTF-8 ALL",
        "SORT (BOGUS) UTF-8 ALL",
        "SORT (REVERSE) UTF-8 ALL",
        "SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        "SORT (DATE)  UTF-8 ALL",
        "SORT (DATE) UTF-8",
        "SORT (DATE) UTF-8 ",
        "SORT (DATE)",
        "SORT (DATE) UTF-8 BOGUSKEY",
        "SORT (DATE) {5+}\r\nUTF-8 ALL",  # charset = atom / quoted: no literal
        "SORT RETURN (SAVE) (DATE) UTF-8 ALL",
        "SORT RETURN (MIN (DATE) UTF-8 ALL",
        "SORT RETURN (DATE) UTF-8 ALL",
        "SORT (DATE) UTF-8 ALL)",
        "SORT (DATE)(SIZE) UTF-8 ALL",
        "SORT (\x01) UTF-8 ALL",
        "THREAD",
        "THREAD REFERENCES",
        "THREAD REFERENCES UTF-8",
        "THREAD BOGUS UTF-8 ALL",
        "THREAD (REFERENCES) UTF-8 ALL",
        "THREAD ORDEREDSUBJECT UTF-8 ALL ((",
        "UID THREAD",
        "UID SORT (DATE)",
        "SORT (" + "DATE " * 20000 + "DATE) UTF-8 ALL",
        "SORT (DATE) UTF-8 " + "(" * 200 + "ALL" + ")" * 200,
    ],
)
def test_malformed_is_bad(sortable: Session, command: str) -> None:
    assert sortable.status(command).startswith("BAD")
    assert sortable.ok("SORT (SIZE) UTF-8 SUBJECT gamma") == ["* SORT 4"]  # session goes on


def test_not_selected(server: RunningServer) -> None:
    s = Session(server, "alice")
    assert s.status("SORT (DATE) UTF-8 ALL").startswith("BAD")
    assert s.status("THREAD REFERENCES UTF-8 ALL").startswith("BAD")


def test_thread_orderedsubject(sortable: Session) -> None:
    """RFC 5256 §3: by base subject then date; threads by their first message's date. The
    base subjects: "" (6), alpha (2, 7 at 11:00Z; 3 has no Date: its arrival, 2 Jan 00:00Z,
    is the earliest), beta (1 at 10:00Z, 5 at 11:00Z), gamma (4, 1 Jan 12:00Z)."""
    assert sortable.ok("THREAD ORDEREDSUBJECT UTF-8 ALL") == ["* THREAD (4)(3 (2)(7))(1 5)(6)"]
    assert sortable.ok("UID THREAD ORDEREDSUBJECT UTF-8 SUBJECT beta") == ["* THREAD (1 5)"]
    assert sortable.ok('THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp"') == ["* THREAD"]


@pytest.fixture
def threaded(server: RunningServer) -> Iterator[Session]:
    """A conversation with a missing parent, a reply found by subject only, a quoted
    Message-ID, a duplicate Message-ID and an In-Reply-To fallback."""
    s = Session(server, "alice")
    day = "Tue, 3 Jan 2023 {:02d}:00:00 +0000"
    msgs = [
        message("Plans", date=day.format(1), mid="<root@x>"),  # 1
        message("Re: Plans", date=day.format(3), mid="<r2@x>", refs="<root@x> <r1@x>"),  # 2
        message("Re: Plans", date=day.format(2), mid="<r1@x>", refs='<"root"@x>'),  # 3
        message("Lunch", date=day.format(4), mid="<l1@x>", refs="<gone@x>"),  # 4
        message("Re: Lunch", date=day.format(5), mid="<l2@x>", refs="<gone@x>"),  # 5
        message("Re: Plans", date=day.format(6), mid="<root@x>"),  # 6: duplicate id
        message("Other", date=day.format(7), mid="<o1@x>"),  # 7
        message("Re: Other", date=day.format(8), irt="<o1@x> (sent by a@x)"),  # 8
        message("Re: Lost", date=day.format(9), mid="<lost2@x>"),  # 9
        message("Lost", date=day.format(10), mid="<lost1@x>"),  # 10
    ]
    for i, text in enumerate(msgs):
        append(s, text, f"0{i % 9 + 1}-Feb-2023 00:00:00 +0000")
    s.ok("SELECT INBOX")
    yield s
    s.raw.close()


def test_thread_references(threaded: Session) -> None:
    """1 <- 3 <- 2 by References (3's quoted id is 1's); 4 and 5 share a missing parent:
    a dummy holding both; 6 duplicates 1's id, so it links by subject only (a reply: a
    child of 1); 8 replies to 7 by In-Reply-To; 9 ("Re: Lost") and 10 ("Lost") by subject:
    the non-reply 10 takes the reply 9 as its child even though 10 is younger."""
    assert threaded.ok("THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2)(6))((4)(5))(7 8)(10 9)"
    ]
    assert threaded.ok("UID THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2)(6))((4)(5))(7 8)(10 9)"
    ]
    # without 1 among the searched messages, 6 is the first with <root@x>: the parent
    assert threaded.ok("THREAD REFERENCES UTF-8 NOT SUBJECT Lunch NOT SUBJECT Other 2:*") == [
        "* THREAD (6 3 2)(10 9)"
    ]
    # a dummy parent with one child is dropped; with two it stays (RFC 5256 §4 "((3)(5))")
    assert threaded.ok("THREAD REFERENCES UTF-8 2:3") == ["* THREAD (3 2)"]
    assert threaded.ok("THREAD REFERENCES UTF-8 4:5") == ["* THREAD ((4)(5))"]
    threaded.ok("STORE 1 +FLAGS (\\Deleted)")
    threaded.ok("EXPUNGE")  # now 6 holds <root@x> for every search
    assert threaded.ok("UID THREAD REFERENCES UTF-8 ALL") == ["* THREAD ((4)(5))(6 3 2)(7 8)(10 9)"]
    assert threaded.ok("THREAD REFERENCES UTF-8 ALL") == ["* THREAD ((3)(4))(5 2 1)(6 7)(9 8)"]


def test_results_follow_the_mailbox(server: RunningServer, threaded: Session) -> None:
    """Sort orders and thread trees are cached while the mailbox holds the same messages:
    another session's APPEND and EXPUNGE show in the next SORT/THREAD once this session was
    told of them (a message it was not told of is in no result, as in SEARCH)."""
    first = threaded.ok("SORT (REVERSE DATE) UTF-8 ALL")
    assert first == ["* SORT 10 9 8 7 6 5 4 2 3 1"]
    assert threaded.ok("THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2)(6))((4)(5))(7 8)(10 9)"
    ]
    other = Session(server, "alice")
    append(
        other,
        message(
            "Re: Plans",
            date="Wed, 4 Jan 2023 00:00:00 +0000",
            mid="<r3@x>",
            refs="<root@x> <r1@x> <r2@x>",
        ),
        "01-Mar-2023 00:00:00 +0000",
    )
    # not yet told of message 11: the same answer, then the EXISTS after it (RFC 5256 §3
    # forbids only EXPUNGE during SORT)
    untagged = threaded.ok("SORT (REVERSE DATE) UTF-8 ALL")
    assert untagged[0] == first[0]
    assert "* 11 EXISTS" in untagged[1:]
    assert threaded.ok("SORT (REVERSE DATE) UTF-8 ALL") == ["* SORT 11 10 9 8 7 6 5 4 2 3 1"]
    assert threaded.ok("THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2 11)(6))((4)(5))(7 8)(10 9)"
    ]
    other.ok("SELECT INBOX")
    other.ok("STORE 10 +FLAGS (\\Deleted)")
    other.ok("EXPUNGE")
    threaded.ok("NOOP")
    assert threaded.ok("SORT (REVERSE DATE) UTF-8 ALL") == ["* SORT 10 9 8 7 6 5 4 2 3 1"]
    assert threaded.ok("UID SORT (REVERSE DATE) UTF-8 ALL") == ["* SORT 11 9 8 7 6 5 4 2 3 1"]
    assert threaded.ok("THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2 10)(6))((4)(5))(7 8)(9)"
    ]
    assert threaded.ok("SORT (REVERSE DATE) UTF-8 SUBJECT Plans") == ["* SORT 10 6 2 3 1"]
    append(other, message("Late", mid="<late@x>", refs="<o1@x>"), "01-Mar-2023 00:00:00 +0000")
    untagged = threaded.ok("UID THREAD REFERENCES UTF-8 ALL")  # 12 not told of yet
    assert untagged[0] == "* THREAD (1 (3 2 11)(6))((4)(5))(7 8)(9)"
    assert threaded.ok("UID THREAD REFERENCES UTF-8 ALL") == [
        "* THREAD (1 (3 2 11)(6))((4)(5))(7 (8)(12))(9)"
    ]
    other.raw.close()


def test_modseq_key(sortable: Session) -> None:
    """RFC 7162 §3.1.9: a MODSEQ key makes SORT end in (MODSEQ n), the highest of the
    messages returned; §3.1.10 example 20: ESORT carries MODSEQ; THREAD is unchanged."""
    sortable.ok("STORE 4 +FLAGS.SILENT (\\Flagged)")  # 4 now has the highest mod-sequence
    fetched = sortable.ok("FETCH 1:7 (MODSEQ)")
    modseq = {
        int(m[1]): int(m[2])
        for line in fetched
        if (m := re.match(r"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", line))
    }
    assert len(modseq) == 7
    top = modseq[4]
    assert max(modseq.values()) == top
    assert sortable.ok("SORT (DATE) UTF-8 MODSEQ 1") == [f"* SORT 4 3 1 2 5 7 6 (MODSEQ {top})"]
    below = max(v for k, v in modseq.items() if k != 4)
    assert sortable.ok("SORT (SIZE) UTF-8 MODSEQ 1 NOT 4") == [
        f"* SORT 2 5 1 6 3 7 (MODSEQ {below})"
    ]
    assert sortable.ok(f"SORT (DATE) UTF-8 MODSEQ {top + 1}") == ["* SORT"]
    assert _untagged(sortable, "SORT RETURN (ALL) (DATE) UTF-8 MODSEQ 1") == [
        f'* ESEARCH (TAG "X") ALL 4,3,1:2,5,7,6 MODSEQ {top}'
    ]
    # MIN and MAX alone: the highest of those two (RFC 4731 §3.2): 3 and 6, not 7's
    assert max(modseq[3], modseq[6]) < modseq[7]
    assert _untagged(sortable, "SORT RETURN (MIN MAX) (DATE) UTF-8 MODSEQ 1 NOT 4") == [
        f'* ESEARCH (TAG "X") MIN 3 MAX 6 MODSEQ {max(modseq[3], modseq[6])}'
    ]
    assert sortable.ok("THREAD ORDEREDSUBJECT UTF-8 MODSEQ 1") == ["* THREAD (4)(3 (2)(7))(1 5)(6)"]
