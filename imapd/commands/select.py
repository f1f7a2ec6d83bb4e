"""Entering and leaving the selected state: SELECT/EXAMINE, CLOSE, UNSELECT
(RFC 3501 §6.3.1-2, §6.4.2, RFC 3691), with the CONDSTORE and QRESYNC select parameters,
HIGHESTMODSEQ and the CLOSED response code (RFC 7162 §3.1.8, §3.2.5, §3.2.11)."""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from imapd import objectid
from imapd.commands.acl import require
from imapd.commands.auth import enable, highestmodseq_response
from imapd.commands.base import Outcome, Selection, ok, refusal
from imapd.commands.rev2 import rev2_list_response
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, ImapError
from imapd.protocol.responses import Atom, Response, Untagged, UntaggedStatus
from imapd.protocol.state import Authenticated, Selected
from imapd.protocol.urlmech import URLMECH_SELECT
from imapd.protocol.values import SequenceSet
from imapd.selected import SelectedView, flag_list, system_and
from notify.bus import url_key_topics
from store.acl import settable
from store.api import MailboxInfo, User
from store.errors import StoreError

if TYPE_CHECKING:
    from imapd.commands.context import Context

#: Known messages read per store call while answering SELECT (QRESYNC ...).
RESYNC_BATCH = 5000


async def handle_select(session: Context, cmd: c.Select) -> Outcome:
    """SELECT/EXAMINE mailbox [(CONDSTORE)] [(QRESYNC (uidvalidity modseq [known-uids
    [seq-match]]))] (RFC 3501 §6.3.1-2, RFC 7162 §3.1.8, §3.2.5). A failed SELECT leaves
    no mailbox selected; one that replaces a selected mailbox starts with ``* OK [CLOSED]``
    (RFC 7162 §3.2.11). Example: RFC 7162 §3.2.5.1."""
    user = session.require_user()
    if cmd.qresync is not None and "QRESYNC" not in session.enabled:
        raise BadCommand("QRESYNC needs ENABLE QRESYNC first")  # RFC 7162 §3.2.5
    closed: list[Response] = []
    if session.view is not None:  # left now, whatever follows: its changes are not told
        session.subscription.watch(mailboxes=frozenset(), topics=frozenset())
        session.subscription.drain()
        closed.append(UntaggedStatus("OK", "Previous mailbox closed", "CLOSED"))
    try:
        return await _select(session, user, cmd, closed)
    except (StoreError, ImapError) as exc:
        # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
        return refusal(exc, state=Authenticated(user.name), responses=closed)


async def _select(
    session: Context, user: User, cmd: c.Select, responses: list[Response]
) -> Outcome:
    sub = session.subscription
    snapshot = None
    try:
        mailbox = await session.store.get_mailbox(user.id, cmd.mailbox)
        # RFC 4314 §4: r, checked before the feed is watched (nothing of a mailbox the user
        # may not read ever reaches this session). §5.2: without i, e or a flag right the
        # mailbox is READ-ONLY even for SELECT.
        require(mailbox, "r")
        readonly = cmd.readonly or not any(r in mailbox.rights for r in "iestw")
        # Subscribe first, then read the snapshot: changes with seq <= snapshot.seq are in it.
        # URLMECH: RESETKEY of this mailbox or of all keys, this user's only (RFC 4467 §7).
        sub.watch(mailboxes=frozenset({mailbox.id}), topics=url_key_topics(user.name, mailbox.id))
        # IMAP4rev2 has no \Recent (RFC 9051 Appendix E item 12): claimed by rev1 sessions only.
        claim = not readonly and "IMAP4rev2" not in session.enabled
        snapshot = await session.store.open_mailbox(user.id, cmd.mailbox, claim_recent=claim)
    finally:
        if snapshot is None:
            sub.watch(mailboxes=frozenset(), topics=frozenset())
            sub.drain()
    # As this user sees it: the name in their namespaces, their rights (kept while selected,
    # as RFC 4314 §5.1.1 allows).
    info = dataclasses.replace(
        snapshot.mailbox, name=mailbox.name, rights=mailbox.rights, subscribed=mailbox.subscribed
    )
    if cmd.condstore or cmd.qresync is not None:
        enable(session, "CONDSTORE", selected=False)  # RFC 7162 §3.1.8; none selected yet
    view = SelectedView(
        mailbox_id=info.id,
        uids=list(snapshot.uids),
        readonly=readonly,
        recent=set() if "IMAP4rev2" in session.enabled else set(snapshot.recent),
        keywords=set(snapshot.keywords),
        highestmodseq=info.highestmodseq,
        condstore="CONDSTORE" in session.enabled,
        qresync="QRESYNC" in session.enabled,
        rev2="IMAP4rev2" in session.enabled,  # imapd/rev2.py
        uidonly="UIDONLY" in session.enabled,
        octets_bound=info.size,
    )
    # Drop what the snapshot already contains; keep later changes for the first flush.
    sub.discard_through(snapshot.seq)
    flags = flag_list(system_and(view.keywords))
    responses += [
        Untagged((Atom("FLAGS"), flags)),
        Untagged((len(view.uids), Atom("EXISTS"))),
    ]
    if view.rev2:  # RFC 9051 §6.3.2: LIST is REQUIRED, RECENT and UNSEEN are gone
        responses.append(await rev2_list_response(session, info))
    else:
        responses.append(Untagged((len(view.recent), Atom("RECENT"))))
    if snapshot.first_unseen_uid is not None and not view.rev2 and not view.uidonly:
        # RFC 9586 §3: no message number in any response under UIDONLY.
        seq = view.seq_of(snapshot.first_unseen_uid)
        if seq is not None:
            responses.append(UntaggedStatus("OK", "First unseen", f"UNSEEN {seq}"))
    responses.append(UntaggedStatus("OK", "UIDs valid", f"UIDVALIDITY {info.uidvalidity}"))
    responses.append(UntaggedStatus("OK", "Predicted next UID", f"UIDNEXT {info.uidnext}"))
    responses.append(UntaggedStatus("OK", "Ok", objectid.mailbox_code(info)))  # RFC 8474 §4.2
    if readonly:
        responses.append(UntaggedStatus("OK", "Read-only mailbox", "PERMANENTFLAGS ()"))
    else:
        # RFC 4314 §5.1.1: only the flags this user may change.
        # RFC 3501 §7.1: no \* once the mailbox holds limits.max_keywords keywords.
        room = len(view.keywords) < session.config.limits.max_keywords
        wild = ("\\*",) if "w" in info.rights and room else ()
        perm = " ".join((*settable(system_and(view.keywords), info.rights), *wild))
        responses.append(UntaggedStatus("OK", "Flags permitted", f"PERMANENTFLAGS ({perm})"))
    # RFC 7162 §3.1.2.1 requires it once CONDSTORE is enabled and does not forbid it
    # before; sent always, as Cyrus does: clients such as Thunderbird turn CONDSTORE on only
    # when the server volunteers it. Nothing else changes for a CONDSTORE-unaware client
    # (no MODSEQ in FETCH, no [HIGHESTMODSEQ] on EXPUNGE...: view.condstore stays off).
    # Never [NOMODSEQ] (§3.1.2.2): every mailbox keeps modseqs.
    responses.append(highestmodseq_response(info.highestmodseq))
    # RFC 4467 §7.1 ("BASE.7.1.URLMECH"): "returned in an untagged OK response in response
    # to a RESETKEY, SELECT, or EXAMINE command": the mechanisms URLAUTH accepts here.
    responses.append(URLMECH_SELECT)
    q = cmd.qresync
    if q is not None and q.uidvalidity == info.uidvalidity:
        # On a UIDVALIDITY mismatch the remaining parameters are ignored (§3.2.5).
        responses += await _resync(session, view, info, q)
    code = "READ-ONLY" if readonly else "READ-WRITE"
    name = "EXAMINE" if cmd.readonly else "SELECT"
    return Outcome(
        text=f"{name} completed",
        code=code,
        responses=responses,
        state=Selected(user.name, info.name, readonly),
        selection=Selection(info, view),
    )


async def _resync(
    session: Context, view: SelectedView, info: MailboxInfo, q: c.QResyncParams
) -> list[Response]:
    """RFC 7162 §3.2.5.1: ``VANISHED (EARLIER)`` for known UIDs expunged since ``q.modseq``,
    then ``FETCH (UID FLAGS MODSEQ)`` for known messages changed since. Without known UIDs
    the client knows ``1:<UIDNEXT-1>``. The changes are read after the snapshot: anything
    newer also reaches the client through the usual updates after this command, so a UID
    the client still numbers is never reported as VANISHED (EARLIER)."""
    largest = info.uidnext - 1
    if largest < 1:
        return []  # never had a message: the known set is empty
    if q.known_uids is None:
        known: list[tuple[int, int]] = [(1, largest)]
    else:
        known = q.known_uids.merged(largest)
    out: list[Response] = []
    floor = 0 if q.seq_match is None else _seq_match_floor(view, *q.seq_match)
    vanished_ranges = _clip(known, floor + 1)
    if vanished_ranges:
        gone = await session.store.vanished_since(view.mailbox_id, q.modseq, vanished_ranges)
        gone = [u for u in gone if view.seq_of(u) is None]
        if gone:
            out.append(
                Untagged(
                    (Atom("VANISHED"), (Atom("EARLIER"),), Atom(str(SequenceSet.from_values(gone))))
                )
            )
    present: list[int] = []
    for lo, hi in known:
        present += view.uids[bisect_left(view.uids, lo) : bisect_right(view.uids, hi)]
    for start in range(0, len(present), RESYNC_BATCH):
        chunk = present[start : start + RESYNC_BATCH]
        for record in await session.store.fetch(view.mailbox_id, chunk, changedsince=q.modseq):
            seq = view.seq_of(record.uid)
            if seq is not None:
                out.append(view.fetch_flags_response(seq, record.uid, record.flags, record.modseq))
    return out


def _clip(ranges: list[tuple[int, int]], low: int) -> list[tuple[int, int]]:
    return [(max(lo, low), hi) for lo, hi in ranges if hi >= low]


def _seq_match_floor(view: SelectedView, seqs: SequenceSet, uids: SequenceSet) -> int:
    """RFC 7162 §3.2.5.2: pair the client's message numbers with its UIDs, in order. A pair
    that matches the mailbox now means the client knows every expunge up to that UID (the
    server's UIDs up to it are a subset of the client's, and as many), so VANISHED (EARLIER)
    starts above the highest matching pair. Sets of different sizes, or samples too large
    to be samples, match nothing."""
    numbers = _expand(seqs, view.exists)
    known = _expand(uids, view.uids[-1] if view.uids else 0)
    if numbers is None or known is None or len(numbers) != len(known):
        return 0
    floor = 0
    for seq, uid in zip(numbers, known, strict=True):
        if 1 <= seq <= view.exists and view.uids[seq - 1] == uid:
            floor = max(floor, uid)
    return floor


def _expand(s: SequenceSet, largest: int, limit: int = 100_000) -> list[int] | None:
    total = 0
    out: list[int] = []
    for lo, hi in s.resolve(largest):
        total += hi - lo + 1
        if total > limit:
            return None
        out.extend(range(lo, hi + 1))
    return sorted(set(out))


async def handle_close(session: Context, cmd: c.Close) -> Outcome:
    """CLOSE (RFC 3501 §6.4.2): expunge silently when read-write, then deselect."""
    view = session.require_view()
    # RFC 4314 §4: without e the expunge is skipped silently, the mailbox still closed.
    if not view.readonly and session.mailbox is not None and "e" in session.mailbox.rights:
        await session.store.expunge(view.mailbox_id, session.origin)
    outcome = ok("CLOSE completed")
    outcome.state = Authenticated(session.require_user().name)
    return outcome


async def handle_unselect(session: Context, cmd: c.Unselect) -> Outcome:
    """UNSELECT (RFC 3691): deselect without expunging."""
    session.require_view()
    outcome = ok("UNSELECT completed")
    outcome.state = Authenticated(session.require_user().name)
    return outcome
