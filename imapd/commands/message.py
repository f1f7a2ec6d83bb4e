"""Selected-state message commands: EXPUNGE, SEARCH, STORE, COPY, MOVE, IDLE (RFC 3501
§6.4, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 2177 IDLE, RFC 7162 CONDSTORE and QRESYNC,
RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 8514 SAVEDATE), and the checks they share with
FETCH (imapd/commands/fetch.py), SORT/THREAD and REPLACE: rights, read-only, keyword and
search-key limits.

``$`` (RFC 5182) is the session's saved search result, kept as UIDs, so it names the same
messages in FETCH and UID FETCH alike and loses expunged ones on its own; every handler
taking a sequence set resolves it through `SelectedView.resolve` with that list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from imapd.commands.acl import lookup
from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.updates import open_context, prepare_update
from imapd.protocol import commands as c
from imapd.protocol.errors import BadCommand, CommandRefused
from imapd.protocol.framing import Mode
from imapd.protocol.responses import (
    Atom,
    Raw,
    Response,
    Untagged,
    UntaggedStatus,
    Value,
)
from imapd.protocol.values import SearchKey, SequenceSet
from imapd.rfc5267 import partial_item
from imapd.selected import SelectedView
from store.acl import settable
from store.api import Criterion
from store.changes import FlagsChanged, MessagesAdded, MessagesExpunged
from store.errors import MailboxNotFound
from store.ranges import number_ranges

if TYPE_CHECKING:
    from imapd.commands.context import Context


def _require_writable(view: SelectedView) -> None:
    if view.readonly:
        raise CommandRefused("Mailbox is read-only", "READ-ONLY")


def _rights(session: Context) -> str:
    """The user's rights on the selected mailbox, as checked at SELECT (RFC 4314 §5.1.1
    lets them be cached; ``r`` is implied)."""
    return session.mailbox.rights if session.mailbox is not None else ""


def _require_rights(session: Context, needed: str) -> None:
    """Refuse a selected-state command without ``needed``: NOPERM (the user selected the
    mailbox, so it is no secret to them)."""
    if not all(r in _rights(session) for r in needed):
        raise CommandRefused("Permission denied", "NOPERM")


def _told_highestmodseq(session: Context, view: SelectedView) -> int:
    """The HIGHESTMODSEQ for the tagged OK of a command after which every update is sent
    (EXPUNGE, UID EXPUNGE, MOVE; RFC 7162 §3.2.7, §3.2.9, RFC 6851 §4.4). The store
    publishes in commit order, so every change up to the highest one queued for this
    session is queued too, and all of them go out before the tagged OK."""
    highest = view.highestmodseq
    for change in session.subscription.pending:
        if isinstance(change, MessagesAdded | MessagesExpunged | FlagsChanged) and (
            change.mailbox.id == view.mailbox_id
        ):
            highest = max(highest, change.counts.highestmodseq)
    return highest


# --- EXPUNGE --------------------------------------------------------------------------
async def handle_expunge(session: Context, cmd: c.Expunge) -> Outcome:
    """EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE set (RFC 4315 §2.1). The EXPUNGE
    responses come from the session's own change, flushed after the command."""
    view = session.require_view()
    _require_writable(view)
    _require_rights(session, "e")  # RFC 4314 §4
    uids = None
    if cmd.uids is not None:
        uids = view.resolve(cmd.uids, uid=True, saved=session.saved_search)
        if not uids:
            return ok("EXPUNGE completed")
    removed = await session.store.expunge(view.mailbox_id, session.origin, uids)
    if removed and view.condstore:
        return ok("EXPUNGE completed", f"HIGHESTMODSEQ {_told_highestmodseq(session, view)}")
    return ok("EXPUNGE completed")


# --- SEARCH ---------------------------------------------------------------------------
def to_criterion(key: SearchKey, view: SelectedView, saved: list[int]) -> Criterion:
    """Resolve session state (sequence numbers, $, \\Recent) into a store Criterion."""
    match key.name:
        case "SEQSET" | "UID":
            assert isinstance(key.value, SequenceSet)
            # A number above the count matches nothing, as in Dovecot and Cyrus (RFC 3501 §9
            # leaves the choice; SEARCH keys often come from a stale view): no BAD.
            uids = view.resolve(key.value, uid=key.name == "UID", saved=saved, lenient=True)
            return Criterion("UIDS", tuple(number_ranges(uids)))
        case "RECENT":
            return Criterion("UIDS", tuple(number_ranges(view.recent)))
        case "NEW":
            return Criterion(
                "AND",
                children=(
                    Criterion("UIDS", tuple(number_ranges(view.recent))),
                    Criterion("UNSEEN"),
                ),
            )
        case "OLD":
            recent = Criterion("UIDS", tuple(number_ranges(view.recent)))
            return Criterion("NOT", children=(recent,))
        case _:
            kids = tuple(to_criterion(k, view, saved) for k in key.children)
            value = key.value
            assert not isinstance(value, SequenceSet)
            return Criterion(key.name, value, key.header, kids)


def mentions_modseq(key: SearchKey) -> bool:
    return key.name == "MODSEQ" or any(mentions_modseq(k) for k in key.children)


async def handle_search(session: Context, cmd: c.Search) -> Outcome:
    """[UID] SEARCH [RETURN (MIN MAX ALL COUNT SAVE)] [CHARSET x] keys (RFC 3501 §6.4.4,
    ESEARCH RFC 4731 §3.1, SEARCHRES RFC 5182 §2). A MODSEQ key enables CONDSTORE and adds
    the highest mod-sequence found (RFC 7162 §3.1.5, §3.1.10; RFC 4731 §3.2). Examples:
    RFC 4731 §3.1, RFC 5182 §2.4."""
    view = session.require_view()
    save = cmd.return_opts is not None and "SAVE" in cmd.return_opts
    try:
        return await _search(session, view, cmd)
    except BadCommand:
        raise  # RFC 5182 §2.1: a BAD leaves $ as it was
    except Exception:
        if save:
            session.saved_search = []  # RFC 5182 §2.1: a NO with SAVE empties $
        raise


#: Return options that ask for no result data (RFC 5182 SAVE, RFC 5267 CONTEXT and UPDATE).
_NO_RESULT = frozenset({"SAVE", "CONTEXT", "UPDATE"})


def _count_keys(key: SearchKey, limit: int) -> int:
    """Keys in the tree, counted without recursion, stopping past ``limit``."""
    count, stack = 0, [key]
    while stack and count <= limit:
        k = stack.pop()
        count += 1
        stack.extend(k.children)
    return count


def check_search_keys(session: Context, key: SearchKey) -> None:
    """Refuse a search program with more keys than the configured limit (also SORT, THREAD)."""
    limit = session.config.limits.max_search_keys
    if _count_keys(key, limit) > limit:
        raise CommandRefused(f"Too many search keys (limit {limit})", "LIMIT")


async def _search(session: Context, view: SelectedView, cmd: c.Search) -> Outcome:
    check_search_keys(session, cmd.key)
    live = prepare_update(session, cmd.tag, cmd.update, cmd.key)  # RFC 5267 §4.3
    criterion = to_criterion(cmd.key, view, session.saved_search)
    with_modseq = mentions_modseq(cmd.key)
    owed = enable(session, "CONDSTORE") if with_modseq else []
    found = await session.store.search(view.mailbox_id, criterion)
    known, numbers = view.numbered(found)
    if cmd.uid:
        numbers = known
    opts = cmd.return_opts
    if opts is None and view.rev2:
        opts = ()  # RFC 9051 §6.4.4: ESEARCH, ALL when no return option is given
    if opts is None:
        # The numbers as one pre-rendered value: thousands of them for SEARCH UNSEEN.
        items: list[Value] = [Atom("SEARCH")]
        if numbers:
            items.append(Raw(" ".join(map(str, numbers)).encode("ascii")))
        modseq = await highest_modseq(session, view, known) if with_modseq else None
        if modseq is not None:
            items.append((Atom("MODSEQ"), modseq))  # RFC 7162 §3.1.6
        return ok("SEARCH completed", None, *owed, Untagged(tuple(items)))
    # RFC 4731 §3.1: RETURN () means ALL (CONTEXT alone too: a hint, RFC 5267 §4.2); SAVE
    # alone returns no ESEARCH (RFC 5182 §2.2); UPDATE returns nothing itself (§4.3).
    wanted = {o for o in opts if o not in _NO_RESULT} if set(opts) - {"CONTEXT"} else {"ALL"}
    picked = sorted(
        {known[0] if o == "MIN" else known[-1] for o in wanted & {"MIN", "MAX"} if known}
    )
    # RFC 5182 §2.4: MIN and/or MAX without ALL or COUNT save just what they return.
    only_ends = bool(wanted) and not wanted & {"ALL", "COUNT", "PARTIAL"}
    if "SAVE" in opts:
        session.saved_search = picked if only_ends else known
    refused = open_context(session, cmd, live, known)  # RFC 5267 §4.3: NOUPDATE, or none
    if not wanted and "UPDATE" not in opts:
        return ok("SEARCH completed, result saved", None, *owed)
    items = [Atom("ESEARCH"), (Atom("TAG"), cmd.tag)]
    if cmd.uid:
        items.append(Atom("UID"))
    if known and "MIN" in wanted:
        items += [Atom("MIN"), numbers[0]]
    if known and "MAX" in wanted:
        items += [Atom("MAX"), numbers[-1]]
    if "COUNT" in wanted:
        items += [Atom("COUNT"), len(known)]
    if known and "ALL" in wanted:
        items += [Atom("ALL"), Atom(str(SequenceSet.from_values(numbers)))]
    if cmd.partial is not None:  # RFC 5267 §4.4: mailbox order
        items += partial_item(cmd.partial, numbers, sort=False)
    if with_modseq:
        # RFC 4731 §3.2: of the MIN/MAX messages alone, else of all found.
        modseq = await highest_modseq(session, view, picked if only_ends else known)
        if modseq is not None:
            items += [Atom("MODSEQ"), modseq]
    return ok("SEARCH completed", None, *owed, Untagged(tuple(items)), *refused)


async def highest_modseq(session: Context, view: SelectedView, uids: list[int]) -> int | None:
    """The highest mod-sequence among ``uids``; None when there is none (no match)."""
    if not uids:
        return None
    records = await session.store.fetch(view.mailbox_id, uids)
    return max((r.modseq for r in records), default=None)


# --- STORE ----------------------------------------------------------------------------
def check_keyword_limit(session: Context, known: Iterable[str], flags: Iterable[str]) -> None:
    """``limits.max_keywords``: a command that would bring a mailbox's keywords past it
    answers NO [LIMIT] (RFC 5530) and changes nothing (issue 14: 101,122 keywords were
    accepted, and every SELECT then listed them all, 1.8 MB)."""
    limit = session.config.limits.max_keywords
    have = {k.lower() for k in known}
    new = {f.lower() for f in flags if not f.startswith("\\")} - have
    if new and len(have) + len(new) > limit:
        raise CommandRefused(f"Too many keywords in this mailbox (limit {limit})", "LIMIT")


async def handle_store(session: Context, cmd: c.Store) -> Outcome:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6,
    RFC 7162 §3.1.3, examples 3-8 there). UNCHANGEDSINCE enables CONDSTORE; messages with
    a higher mod-sequence are left alone and named in ``[MODIFIED set]``. Once CONDSTORE is
    on, every message changed gets a FETCH with UID and MODSEQ even with .SILENT (§3.1.3,
    §3.2.4); with UNCHANGEDSINCE every message that passed the test does."""
    view = session.require_view()
    _require_writable(view)
    flags = _storable(session, cmd)
    if cmd.mode != "-":
        check_keyword_limit(session, view.keywords, flags)
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=session.saved_search)
    owed = enable(session, "CONDSTORE") if cmd.unchangedsince is not None else []
    uids = [u for u in uids if not view.is_gone(u)]
    if not uids:
        return ok("STORE completed", None, *owed)
    result = await session.store.store_flags(
        view.mailbox_id,
        uids,
        cmd.mode,
        flags,
        session.origin,
        unchangedsince=cmd.unchangedsince,
    )
    changed = {ch.uid for ch in result.changes}
    failed = set(result.modified)
    responses: list[Response] = owed
    for uid in sorted(result.current):
        seq = view.seq_of(uid)
        if uid in failed or seq is None:
            continue
        flags, modseq = result.current[uid]
        if cmd.silent and not (
            view.condstore and (uid in changed or cmd.unchangedsince is not None)
        ):
            continue
        items: list[Value] = []
        if (cmd.uid and not view.uidonly) or view.condstore:  # RFC 9586 §3.3: UIDFETCH
            items += [Atom("UID"), uid]
        if not cmd.silent:
            items += [Atom("FLAGS"), view.flags_with_recent(uid, flags)]
        if view.condstore:
            items += [Atom("MODSEQ"), (modseq,)]
        view.forget_flag_update(uid)
        responses.append(Untagged((*view.fetch_head(seq, uid), tuple(items))))
    code = None
    if result.modified:
        modified = result.modified if cmd.uid else [view.seq_of(u) or 0 for u in result.modified]
        code = f"MODIFIED {SequenceSet.from_values(modified)}"  # RFC 7162 §3.1.3
    text = "Conditional STORE failed" if code else "STORE completed"
    return Outcome(text=text, code=code, responses=responses)


def _storable(session: Context, cmd: c.Store) -> tuple[str, ...]:
    """RFC 4314 §4: \\Seen needs s, \\Deleted t, other flags w. +FLAGS/-FLAGS go on with
    the flags the user may change (a STORE SHOULD NOT fail for some) and are refused with
    none; FLAGS (replace) touches every flag, so it needs all three rights."""
    rights = _rights(session)
    if cmd.mode == "":
        _require_rights(session, "swt")
        return cmd.flags
    kept = settable(cmd.flags, rights)
    if cmd.flags and not kept:
        raise CommandRefused("Permission denied", "NOPERM")
    return kept


# --- COPY / MOVE -----------------------------------------------------------------------
async def _check_copied_keywords(
    session: Context, view: SelectedView, uids: list[int], target_id: int
) -> None:
    """COPY/MOVE carry keywords: `check_keyword_limit` on the target, with the source
    mailbox's keywords first (cheap), the copied messages' own only when that fails."""
    known = await session.store.mailbox_keywords(target_id)
    limit = session.config.limits.max_keywords
    if len({k.lower() for k in (*known, *view.keywords)}) <= limit:
        return
    rows = await session.store.fetch_plain(view.mailbox_id, uids, ("flags",))
    check_keyword_limit(session, known, {f for row in rows for f in str(row[1]).split()})


async def handle_copy(session: Context, cmd: c.Copy) -> Outcome:
    """[UID] COPY / [UID] MOVE set mailbox (RFC 3501 §6.4.7, RFC 6851, COPYUID RFC 4315)."""
    view = session.require_view()
    user = session.require_user()
    if cmd.move:
        _require_writable(view)
        _require_rights(session, "te")  # RFC 6851 §4.2: STORE \Deleted + EXPUNGE rights
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=session.saved_search)
    uids = [u for u in uids if not view.is_gone(u)]
    name = "MOVE" if cmd.move else "COPY"
    if not uids:
        if not cmd.uid and not cmd.sequence_set.saved:
            raise BadCommand("No such message")
        return ok(f"{name} completed")
    # RFC 4314 §4: i on the target; the flags without their right there are not copied.
    target = await lookup(session, cmd.mailbox, "i", target=True)
    if view.keywords and target.id != view.mailbox_id:
        await _check_copied_keywords(session, view, uids, target.id)
    try:
        result = await session.store.copy_messages(
            view.mailbox_id,
            uids,
            user.id,
            target.id,
            session.origin,
            move=cmd.move,
            need="i",  # checked again in the write transaction (see handle_append)
        )
    except MailboxNotFound as exc:
        raise CommandRefused(exc.text, "TRYCREATE") from exc
    # The store copies in ascending source-UID order, so both compressed sets pair up.
    code = (
        f"COPYUID {result.uidvalidity} {SequenceSet.from_values(result.source_uids)} "
        f"{SequenceSet.from_values(result.dest_uids)}"
    )
    if cmd.move:
        # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs; §4.4: the
        # source's new HIGHESTMODSEQ in the tagged OK.
        told = f"HIGHESTMODSEQ {_told_highestmodseq(session, view)}" if view.condstore else None
        return ok("MOVE completed", told, UntaggedStatus("OK", "Moved", code))
    return Outcome(text="COPY completed", code=code)


# --- IDLE -----------------------------------------------------------------------------
async def handle_idle(session: Context, cmd: c.Idle) -> Outcome:
    """IDLE (RFC 2177): the session sends ``+ idling`` and waits for DONE or changes
    (imapd/listening.py), then answers ``OK IDLE terminated``."""
    return Outcome(text="IDLE started", mode=Mode.IDLE)
