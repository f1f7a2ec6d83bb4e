"""SelectedView under CONDSTORE and QRESYNC (RFC 7162), case by case: MODSEQ in unsolicited
FETCH, VANISHED instead of EXPUNGE, the HIGHESTMODSEQ owed while an expunge waits, and an
older change from elsewhere never overriding this session's own newer answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from imapd.protocol.responses import Untagged, UntaggedStatus
from imapd.selected import SelectedView
from store.changes import (
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxRef,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    Origin,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BOX = MailboxRef(1, "alice", "INBOX", 7)
OTHER = Origin(session="other")
ME = Origin(session="me")


def counts(modseq: int) -> Counts:
    return Counts(0, 0, 0, modseq, 0)


def facts(uid: int, modseq: int = 1) -> MessageFacts:
    return MessageFacts(uid, modseq, (), 10, NOW)


def expunged(modseq: int, *uids: int) -> MessagesExpunged:
    return MessagesExpunged(
        1, NOW, OTHER, BOX, counts(modseq), tuple(facts(u) for u in uids), modseq
    )


def flagged(modseq: int, uid: int, *flags: str, origin: Origin = OTHER) -> FlagsChanged:
    change = FlagChange(uid, modseq, flags, flags, ())
    return FlagsChanged(1, NOW, origin, BOX, counts(modseq), (change,))


def added(modseq: int, *uids: int) -> MessagesAdded:
    return MessagesAdded(1, NOW, OTHER, BOX, counts(modseq), tuple(facts(u, modseq) for u in uids))


def shown(responses: list[Any]) -> list[object]:
    out: list[object] = []
    for r in responses:
        if isinstance(r, Untagged):
            out.append(r.items)
        elif isinstance(r, UntaggedStatus):
            out.append(r.code)
    return out


def test_unsolicited_fetch_carries_modseq_only_with_condstore() -> None:
    plain = SelectedView(1, [1, 2], readonly=False, highestmodseq=5)
    plain.apply(flagged(6, 2, "\\Seen"), own=False)
    assert shown(plain.flush(allow_expunge=True)) == [
        (2, "FETCH", ("UID", 2, "FLAGS", ("\\Seen",)))
    ]
    cond = SelectedView(1, [1, 2], readonly=False, highestmodseq=5, condstore=True)
    cond.apply(flagged(6, 2, "\\Seen"), own=False)
    assert shown(cond.flush(allow_expunge=True)) == [
        (2, "FETCH", ("UID", 2, "FLAGS", ("\\Seen",), "MODSEQ", (6,)))
    ]


def test_vanished_only_for_messages_the_client_numbers() -> None:
    view = SelectedView(1, [1, 2, 3], readonly=False, qresync=True, condstore=True)
    view.apply(added(4, 4), own=False)
    view.apply(expunged(5, 2, 4), own=False)  # 4 was never announced
    assert shown(view.flush(allow_expunge=True)) == [("VANISHED", "2")]
    assert view.uids == [1, 3]


def test_waiting_expunge_lowers_highestmodseq_then_restores_it() -> None:
    """RFC 7162 §3.2 and the §6 example: MODSEQs may go out while an expunge waits; the
    client is told a HIGHESTMODSEQ below the expunge's, then the real one once it is sent."""
    view = SelectedView(1, [1, 2, 3], readonly=False, condstore=True, highestmodseq=10)
    assert view.safe_highestmodseq == 10
    view.apply(expunged(11, 2), own=False)
    view.apply(flagged(12, 3, "\\Flagged"), own=False)
    assert view.safe_highestmodseq == 10
    assert shown(view.flush(allow_expunge=False)) == [
        "HIGHESTMODSEQ 10",
        (3, "FETCH", ("UID", 3, "FLAGS", ("\\Flagged",), "MODSEQ", (12,))),
    ]
    assert shown(view.flush(allow_expunge=True)) == [(2, "EXPUNGE"), "HIGHESTMODSEQ 12"]
    assert view.safe_highestmodseq == 12
    assert shown(view.flush(allow_expunge=True)) == []


def test_own_newer_change_replaces_an_older_pending_one() -> None:
    """Another session's change (modseq 6) is applied just before this session's own
    (modseq 7) for the same message: the client must end with the newer flags."""
    view = SelectedView(
        1, [1], readonly=False, condstore=True, highestmodseq=5, keywords={"$Other", "$Mine"}
    )
    view.apply(flagged(6, 1, "$Other"), own=False)
    view.apply(flagged(7, 1, "$Other", "$Mine", origin=ME), own=True)
    assert shown(view.flush(allow_expunge=True)) == [
        (1, "FETCH", ("UID", 1, "FLAGS", ("$Other", "$Mine"), "MODSEQ", (7,))),
    ]
    view.apply(flagged(8, 1, "$Mine", origin=ME), own=True)
    assert shown(view.flush(allow_expunge=True)) == []  # nothing pending: not echoed
