"""SelectedView and RESETKEY (RFC 4467 §7, §7.1): a reset of the selected mailbox's key, or
of all the user's keys, becomes one ``* OK [URLMECH INTERNAL]`` at the next flush, bytes as
the serializer writes them; the session that ran RESETKEY of this mailbox has the code in
its tagged OK instead (§7.1: "can be sent in the tagged OK response instead of requiring a
separate untagged OK response")."""

from __future__ import annotations

import datetime as dt

from imapd.protocol.serializer import serialize
from imapd.protocol.urlmech import URLMECH_RESET
from imapd.selected import SelectedView
from store.changes import Counts, MailboxRef, MessageFacts, MessagesAdded, Origin, UrlKeysReset

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OTHER = Origin(session="other", user="alice")


def view() -> SelectedView:
    return SelectedView(mailbox_id=1, uids=[1, 2], readonly=False)


def reset(mailbox_id: int | None) -> UrlKeysReset:
    return UrlKeysReset(5, NOW, OTHER, "alice", mailbox_id)


def test_the_untagged_ok_on_the_wire() -> None:
    """RFC 4467 §9: ``resp-text-code =/ "URLMECH" SP "INTERNAL" *(SP mechanism ["=" base64])``."""
    assert serialize(URLMECH_RESET) == b"* OK [URLMECH INTERNAL] Mailbox access key reset\r\n"


def test_another_sessions_reset_is_told_once_with_what_else_is_pending() -> None:
    v = view()
    before = v.has_pending
    v.apply(reset(1), own=False)
    v.apply(reset(None), own=False)  # two resets before a flush: one response
    # pending: the fan-out's shared rendering must not skip it (imapd/pushshare.py)
    assert (before, v.has_pending) == (False, True)
    added = MessagesAdded(
        6, NOW, OTHER, MailboxRef(1, "alice", "INBOX", 7), Counts(3, 3, 4, 2, 30),
        (MessageFacts(3, 2, (), 10, NOW),),
    )  # fmt: skip
    v.apply(added, own=False)
    out = v.flush(allow_expunge=False)
    assert out[0] == URLMECH_RESET and out.count(URLMECH_RESET) == 1
    assert v.flush(allow_expunge=True) == []
    assert v.has_pending is False


def test_own_reset_of_this_mailbox_is_answered_by_the_tagged_ok() -> None:
    v = view()
    v.apply(reset(1), own=True)
    assert v.flush(allow_expunge=True) == []


def test_own_reset_of_all_keys_is_told_untagged() -> None:
    """RESETKEY with no argument answers "OK All keys removed" (RFC 4467 §7's example a31):
    the session that ran it, with a mailbox selected, gets the untagged OK too."""
    v = view()
    v.apply(reset(None), own=True)
    assert v.flush(allow_expunge=False) == [URLMECH_RESET]
