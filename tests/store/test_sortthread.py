"""The pure SORT/THREAD algorithms (store/sortthread/): base subject extraction against
RFC 5256 §2.1 step by step, the i;unicode-casemap collation (RFC 5051), sent dates
(RFC 5256 §2.2), msg-id normalization and the REFERENCES algorithm on the RFC's own thread
shapes (§4: "(2)(3 6 (4 23)(44 7 96))" and "((3)(5))")."""

from __future__ import annotations

import pytest

from imapd.protocol.sortthread import ordered_set, thread_data
from store.mime.bodystructure import Address, Envelope
from store.sortthread.collation import casemap
from store.sortthread.records import (
    ContentKeys,
    SortRecord,
    content_keys,
    first_msg_id,
    references_of,
    sent_date,
)
from store.sortthread.subject import base_subject
from store.sortthread.threads import ordered_subject, references


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("Hello", "Hello", False),
        (None, "", False),
        ("", "", False),
        # (1) tabs, continuations and runs of spaces become one space
        ("a \t b\r\n  c", "a b c", False),
        ("=?utf-8?q?caf=C3=A9?= menu", "café menu", False),
        # (2) subj-trailer: "(fwd)" and WSP off the end, repeatedly
        ("note (fwd)", "note", True),
        ("note (FWD) (fwd)  ", "note", True),
        ("note(fwd)", "note", True),
        # (3) subj-leader: *subj-blob subj-refwd / WSP
        ("Re: hi", "hi", True),
        ("RE:hi", "hi", True),
        ("re : hi", "hi", True),
        ("Fw: hi", "hi", True),
        ("FWD: hi", "hi", True),
        ("Re[2]: hi", "hi", True),
        ("Re [2] : hi", "hi", True),
        ("Re: Re: re: hi", "hi", True),
        ("[list] Re: hi", "hi", True),
        ("[a][b] Re: hi", "hi", True),
        ("   hi", "hi", False),
        ("Ref: hi", "Ref: hi", False),  # "ref" is no subj-refwd
        ("Reply: hi", "Reply: hi", False),
        ("Fwdx: hi", "Fwdx: hi", False),
        # (4) a subj-blob goes when a non-empty subj-base is left behind it
        ("[list] hi", "hi", False),
        ("[list]hi", "hi", False),
        ("[list] [tag] hi", "hi", False),
        ("[list]", "[list]", False),
        ("[a] [b]", "[b]", False),
        ("[list] ", "[list]", False),
        # (5) (3) and (4) again until neither applies
        ("[list] Re: [other] Fwd: hi", "hi", True),
        ("Re: [list] Re: hi", "hi", True),
        # (6) [fwd: ...] unwrapped, then again from (2)
        ("[Fwd: hi]", "hi", True),
        ("[fwd: Re: hi (fwd)]", "hi", True),
        ("[Fwd: [Fwd: hi]]", "hi", True),
        ("[Fwd: hi] extra", "extra", False),  # (4): "[Fwd: hi]" is a subj-blob first
        ("[Fwd: [x] hi]", "hi", True),  # (6) first ("[" inside: no blob), then (4)
        ("Re: [Fwd: hi]", "hi", True),
        ("[fwd:]", "", True),
    ],
)
def test_base_subject(subject: str | None, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_collation() -> None:
    """RFC 5051: case-insensitive by titlecase, canonically decomposed, octet ordered."""
    assert casemap("hello") == casemap("HELLO") == casemap("HeLLo")
    assert casemap("éa") == casemap("Éa") == casemap("e\u0301A")  # NFD
    assert casemap("ǆ") == casemap("ǅ") == casemap("Ǆ")  # titlecase maps all three to ǅ
    assert casemap("ß") == "ß"  # no one-to-one titlecase mapping: stays itself
    assert casemap("") < casemap("a") < casemap("B") < casemap("c")
    # decomposed, É is E + U+0301: after every "E" + ASCII, before "F"
    assert casemap("Ezra") < casemap("émile") < casemap("Fred") < casemap("Zebra")


def test_sent_date() -> None:
    """RFC 5256 §2.2: normalized to UTC; invalid zone as UTC; unreadable: None."""
    assert sent_date("Sun, 31 Dec 2000 16:01:33 -0800") == sent_date("1 Jan 2001 00:01:33 +0000")
    assert sent_date("1 Jan 2001 00:01:33 XYZ") == sent_date("1 Jan 2001 00:01:33 +0000")
    assert sent_date("garbage") is None
    assert sent_date(None) is None


def test_msg_ids() -> None:
    """RFC 5256 §3: <"01KF8JCEOCBS0045PS"@xxx.yyy.com> is <01KF8JCEOCBS0045PS@xxx.yyy.com>."""
    assert first_msg_id('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == "<01KF8JCEOCBS0045PS@xxx.yyy.com>"
    assert first_msg_id("junk <a@b> <c@d>") == "<a@b>"
    assert first_msg_id("no id here") is None
    header = b"Subject: x\r\nReferences: <a@b>\r\n <c@d> (comment)\r\n\r\n"
    assert references_of(header, "<z@z>") == ("<a@b>", "<c@d>")
    # no valid id in References: the first valid one of In-Reply-To
    assert references_of(b"References: nothing\r\n\r\n", "<z@z> <y@y>") == ("<z@z>",)
    assert references_of(b"\r\n", "garbage") == ()


def test_content_keys_display() -> None:
    """RFC 5957 §3: decoded addr-name, else mailbox@host, else mailbox, else ""."""

    def env(frm: tuple[Address, ...]) -> Envelope:
        return Envelope(None, None, frm, frm, frm, (), (), (), None, None)

    keys = content_keys(env((Address("=?utf-8?q?=C3=89va?=", None, "eva", "x.org"),)), None, False)
    assert keys.display_from == casemap("Éva")
    assert keys.from_ == "EVA"
    assert (
        content_keys(env((Address(None, None, "eva", "x.org"),)), None, False).display_from
        == "EVA@X.ORG"
    )
    assert content_keys(env((Address("", None, "eva", None),)), None, False).display_from == "EVA"
    assert content_keys(env(()), None, False).display_from == ""


def rec(
    uid: int,
    mid: str | None,
    refs: tuple[str, ...] = (),
    subject: str = "s",
    sent: int | None = None,
) -> SortRecord:
    base, reply = base_subject(subject)
    keys = ContentKeys(
        uid if sent is None else sent, casemap(base), reply, "", "", "", "", "", mid, refs
    )
    return SortRecord(uid, 0, 0, keys)


def render(nodes: list) -> str:  # type: ignore[type-arg]
    return thread_data(nodes, int).decode()


def test_rfc_thread_example() -> None:
    """RFC 5256 §4: "(2)(3 6 (4 23)(44 7 96))" from References alone (the messages were
    moved in from elsewhere, so later numbers are parents of earlier ones)."""
    records = [
        rec(2, "<2@x>", subject="two", sent=1),
        rec(3, "<3@x>", subject="three", sent=2),
        rec(4, "<4@x>", ("<3@x>", "<6@x>"), "Re: three", sent=4),
        rec(6, "<6@x>", ("<3@x>",), "Re: three", sent=3),
        rec(7, "<7@x>", ("<3@x>", "<6@x>", "<44@x>"), "Re: three", sent=7),
        rec(23, "<23@x>", ("<3@x>", "<6@x>", "<4@x>"), "Re: three", sent=5),
        rec(44, "<44@x>", ("<3@x>", "<6@x>"), "Re: three", sent=6),
        rec(96, "<96@x>", ("<3@x>", "<6@x>", "<44@x>", "<7@x>"), "Re: three", sent=8),
    ]
    assert render(references(records)) == "(2)(3 6 (4 23)(44 7 96))"


def test_rfc_dummy_example() -> None:
    """RFC 5256 §4: "((3)(5))": siblings of a parent not in the results."""
    records = [rec(3, "<3@x>", ("<1@x>",), "a"), rec(5, "<5@x>", ("<1@x>",), "b")]
    assert render(references(records)) == "((3)(5))"


def test_references_rules() -> None:
    # 1 names 2 as its parent; 2 then names 1, which would make a loop: not linked
    loop = [rec(1, "<a@x>", ("<b@x>",), "x"), rec(2, "<b@x>", ("<a@x>",), "y")]
    assert render(references(loop)) == "(2 1)"
    # a message referring to itself stays a root
    assert render(references([rec(1, "<a@x>", ("<a@x>",), "x")])) == "(1)"
    # 1.B: a message's own References break the link another message's made for it
    moved = [
        rec(1, "<p@x>", (), "p"),
        rec(2, "<q@x>", (), "q"),
        rec(3, "<d@x>", ("<q@x>", "<c@x>"), "d"),  # c (not seen yet) under q
        rec(4, "<c@x>", ("<p@x>",), "c"),  # c says p
    ]
    assert render(references(moved)) == "(1 4 3)(2)"
    # 1.A: a message that has a parent keeps it
    kept = [
        rec(1, "<p@x>", (), "p"),
        rec(2, "<q@x>", (), "q"),
        rec(3, "<c@x>", ("<p@x>",), "c"),  # provisional parent p
        rec(4, "<d@x>", ("<q@x>", "<c@x>"), "d"),  # 1.A: c already has a parent: kept
    ]
    assert render(references(kept)) == "(1 3 4)(2)"
    # 5: same base subject, neither a reply: a dummy holds both
    same = [rec(1, "<a@x>", (), "Topic", 1), rec(2, "<b@x>", (), "topic", 2)]
    assert render(references(same)) == "((1)(2))"
    # 5: an empty subject never gathers
    empty = [rec(1, "<a@x>", (), "", 1), rec(2, "<b@x>", (), "Re:", 2)]
    assert render(references(empty)) == "(1)(2)"


def test_ordered_subject() -> None:
    """RFC 5256 §3: no grandchildren; threads by the first message's date."""
    records = [
        rec(1, None, subject="b", sent=5),
        rec(2, None, subject="Re: a", sent=3),
        rec(3, None, subject="a", sent=1),
        rec(4, None, subject="A", sent=4),
        rec(5, None, subject="Re: B", sent=6),
    ]
    assert render(ordered_subject(records)) == "(3 (2)(4))(1 5)"


def test_ordered_set() -> None:
    """RFC 5267 §3.2: ranges only ascending."""
    assert ordered_set([5, 6, 7, 3, 2, 1, 9]) == "5:7,3,2,1,9"
    assert ordered_set([]) == ""
