"""SelectedView: the selected mailbox as this session's client knows it. Pure, no I/O.

Owns: the sequence-number <-> UID map, pending updates from other sessions and from this
one, and the timing rules for telling the client (RFC 3501 §7.4.1, §5.5): EXISTS and FETCH
may go out after any command, EXPUNGE never during FETCH, STORE or SEARCH (nor their UID
forms), since the client's sequence numbers would shift under it. A message expunged
elsewhere keeps its number until this session is told (the client may still refer to it).
Must not import asyncio, socket or the store implementation.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from imapd.protocol.errors import BadCommand
from imapd.protocol.responses import (
    Atom,
    Response,
    Serialized,
    Untagged,
    UntaggedStatus,
    Value,
)
from imapd.protocol.urlmech import URLMECH_RESET
from imapd.protocol.values import SYSTEM_FLAGS, SequenceSet
from store.changes import (
    Change,
    FlagsChanged,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    UrlKeysReset,
)


@dataclass(slots=True)
class SelectedView:
    mailbox_id: int
    uids: list[int]  # index i holds the UID of sequence number i + 1, as the client knows it
    readonly: bool
    recent: set[int] = field(default_factory=set)
    condstore: bool = False
    qresync: bool = False
    keywords: set[str] = field(default_factory=set)
    #: UIDs added to the store that the client was not told of yet (ascending).
    _new: list[int] = field(default_factory=list)
    #: UIDs removed from the store that the client still numbers.
    _gone: set[int] = field(default_factory=set)
    #: What their MessagesExpunged said of them, to keep serving FETCH (RFC 2180 §4.1.1).
    _gone_facts: dict[int, MessageFacts] = field(default_factory=dict)
    #: uid -> (flags, modseq) to report as FETCH.
    _flags: dict[int, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    _keywords_changed: bool = False
    #: The highest modseq of the changes applied so far (RFC 7162 §3.1.2.1).
    highestmodseq: int = 0
    #: The lowest modseq among the expunges in ``_gone`` (0 when none is pending).
    _gone_modseq: int = 0
    #: A HIGHESTMODSEQ below ``highestmodseq`` was sent while expunges waited.
    _lowered: bool = False
    #: ENABLE IMAP4rev2 (RFC 9051): no RECENT response, no \\Recent flag (Appendix E item
    #: 12); every unsolicited FETCH carries UID (item 21).
    rev2: bool = False
    #: ENABLE UIDONLY (RFC 9586): FETCH responses become ``* uid UIDFETCH (...)`` (§3.3,
    #: §3.6), EXPUNGE becomes VANISHED (§3.4, §3.6).
    uidonly: bool = False
    #: At least the octets of every message the client may name: the mailbox's size at
    #: SELECT plus each message added since (expunges leave it high); None: unknown. FETCH
    #: skips reading sizes to bound its batches' memory when this is below that bound.
    octets_bound: int | None = None
    #: The mailbox access key was reset (RESETKEY, RFC 4467 §7): ``* OK [URLMECH INTERNAL]``
    #: is due. Only that user's resets reach this view (notify.bus.url_key_topics).
    _urlmech: bool = False

    # --- numbers -------------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def numbered(self, uids: list[int]) -> tuple[list[int], list[int]]:
        """Of ``uids`` (ascending), those the client numbers and their sequence numbers.
        When this view's UIDs are one contiguous run (a mailbox never expunged) a number is
        an offset, computed without a Python step per UID (SEARCH UNSEEN: thousands)."""
        own = self.uids
        if not own or not uids:
            return [], []
        if own[-1] - own[0] + 1 == len(own):  # ascending and contiguous
            known = uids[bisect_left(uids, own[0]) : bisect_right(uids, own[-1])]
            return known, list(map((1 - own[0]).__add__, known))
        pairs = [(u, n) for u in uids if (n := self.seq_of(u)) is not None]
        return [u for u, _ in pairs], [n for _, n in pairs]

    def resolve(
        self,
        sequence_set: SequenceSet,
        *,
        uid: bool,
        saved: list[int] | None = None,
        lenient: bool = False,
    ) -> list[int]:
        """UIDs named by a sequence set (message numbers or UIDs), ascending, existing for
        the client (including ones expunged elsewhere and not yet reported). A message
        number above the count is BAD, unless ``lenient`` (SEARCH): then it names nothing."""
        if sequence_set.saved:
            known = set(self.uids)
            return [u for u in (saved or []) if u in known]
        if uid:
            if not self.uids:
                return []
            largest = self.uids[-1]
            out: list[int] = []
            for lo, hi in sequence_set.merged(largest):  # disjoint, ascending
                start = bisect_left(self.uids, lo)
                end = bisect_left(self.uids, hi + 1)
                out.extend(self.uids[start:end])
            return out  # slices of an ascending list, in order: sorted and unique
        exists = len(self.uids)
        for low, high in sequence_set.ranges:
            if lenient:
                break
            if low is not None and high is not None and max(low, high) > exists:
                # Dovecot and Cyrus answer BAD too; a client that names a number it was
                # never given is out of sync (RFC 3501 §9 seq-number).
                raise BadCommand("Invalid message sequence number")
            if exists == 0 and (low is None or high is None):
                # RFC 3501 §9 seq-number: the BAD "includes "*" if the selected mailbox
                # is empty" (FETCH, STORE, COPY, MOVE alike).
                raise BadCommand("No messages: * names none")
        if len(sequence_set.ranges) == 1:
            # The common 1:* or n:m: one slice, no set of numbers built (FETCH 1:* FLAGS).
            lo, hi = next(sequence_set.resolve(exists))
            return self.uids[max(lo, 1) - 1 : hi]
        seqs = sequence_set.values(exists)
        return [self.uids[s - 1] for s in seqs]

    def is_gone(self, uid: int) -> bool:
        return uid in self._gone

    def gone_facts(self, uids: Iterable[int]) -> list[MessageFacts]:
        """The facts of those ``uids`` that were expunged elsewhere and not yet reported."""
        return [f for u in uids if (f := self._gone_facts.get(u)) is not None]

    # --- updates ------------------------------------------------------------------------
    def apply(self, change: Change, *, own: bool) -> None:
        """Record a committed change. ``own``: made by this session (its flag changes were
        answered by the command itself, so they are not echoed as unsolicited FETCH)."""
        match change:
            case MessagesAdded():
                # Known: told (a bisection, not a set of the whole mailbox) or pending.
                pending = set(self._new)
                for m in change.messages:
                    if m.uid not in pending and self.seq_of(m.uid) is None:
                        self._new.append(m.uid)
                        self._note_keywords(m.flags)
                self._new.sort()
                if self.octets_bound is not None:
                    self.octets_bound += sum(m.size for m in change.messages)
                self.highestmodseq = max(self.highestmodseq, change.counts.highestmodseq)
            case MessagesExpunged():
                for m in change.messages:
                    if m.uid in self._new:
                        self._new.remove(m.uid)
                    elif self.seq_of(m.uid) is not None:
                        self._gone.add(m.uid)
                        self._gone_facts[m.uid] = m
                        if not self._gone_modseq or change.modseq < self._gone_modseq:
                            self._gone_modseq = change.modseq
                    self._flags.pop(m.uid, None)
                self.highestmodseq = max(self.highestmodseq, change.counts.highestmodseq)
            case FlagsChanged():
                for c in change.changes:
                    self._note_keywords(c.flags)
                    # The session's own command reported its change itself; but an older
                    # change from elsewhere still pending for that message would go out
                    # after it and undo it in the client's cache: send the newest instead.
                    if c.uid not in self._gone and (not own or c.uid in self._flags):
                        self._flags[c.uid] = (c.flags, c.modseq)
                self.highestmodseq = max(self.highestmodseq, change.counts.highestmodseq)
            case UrlKeysReset():
                # RFC 4467 §7: every session of the user with the mailbox selected; the one
                # that ran RESETKEY of this mailbox has the code in its tagged OK (§7.1:
                # "can be sent in the tagged OK response instead"), RESETKEY of all keys
                # says "All keys removed" there, so that session is told here too.
                if not own or change.mailbox_id is None:
                    self._urlmech = True
            case _:
                pass

    def _note_keywords(self, flags: tuple[str, ...]) -> None:
        for f in flags:
            if not f.startswith("\\") and f not in self.keywords:
                self.keywords.add(f)
                self._keywords_changed = True

    def forget_flag_update(self, uid: int) -> None:
        """A command is about to report this message's flags itself."""
        self._flags.pop(uid, None)

    def forget_flag_updates(self, uids: Iterable[int]) -> None:
        """`forget_flag_update` for many (nothing to do, as a rule: no step per UID then)."""
        if self._flags:
            for uid in uids:
                self._flags.pop(uid, None)

    @property
    def safe_highestmodseq(self) -> int:
        """A HIGHESTMODSEQ the client may trust now: below any expunge and any flag change
        it was not told of yet (RFC 7162 §3.2, the "VANISHED reply ... is delayed" example
        of §6; a flag FETCH a NOTIFY without FlagChange holds back, RFC 5465 §4)."""
        return self._modseq_told(flags_held=True)

    def _modseq_told(self, *, flags_held: bool) -> int:
        cap = self.highestmodseq
        if self._gone:
            cap = min(cap, self._gone_modseq - 1)
        if flags_held and self._flags:
            cap = min(cap, min(modseq for _, modseq in self._flags.values()) - 1)
        return cap

    @property
    def has_pending(self) -> bool:
        return bool(
            self._new or self._gone or self._flags or self._keywords_changed or self._urlmech
        )

    def flush(self, *, allow_expunge: bool, allow_flags: bool = True) -> list[Response]:
        """What may be told now, in order: OK [URLMECH] (a key reset, RFC 4467 §7), FLAGS
        (new keywords), EXPUNGE/VANISHED, EXISTS, RECENT, FETCH for flag changes (kept for
        later when not ``allow_flags``: a NOTIFY without FlagChange, RFC 5465 §4)."""
        counts = self.flush_counts(allow_expunge=allow_expunge, allow_flags=allow_flags)
        return counts + self.flush_flags(allow_flags)

    def flush_counts(self, *, allow_expunge: bool, allow_flags: bool = True) -> list[Response]:
        """`flush`'s first part: OK [URLMECH], FLAGS, EXPUNGE/VANISHED, EXISTS and RECENT (a
        NOTIFY MessageNew FETCH goes right after these, RFC 5465 §5.2). ``allow_flags``: the flag
        FETCHes follow in the same write (`flush_flags`), else they stay held."""
        out: list[Response] = []
        if self._urlmech:  # RFC 4467 §7: any untagged response may go out now
            out.append(URLMECH_RESET)
            self._urlmech = False
        if self._keywords_changed:
            out.append(Untagged((Atom("FLAGS"), flag_list(system_and(self.keywords)))))
            self._keywords_changed = False
        held = not allow_flags
        if allow_expunge and self._gone:
            out.extend(self._expunge_responses())
            if self._lowered and self.condstore and not (allow_flags and self._flags):
                # What was held is told now (flag changes still held, or none): raise the
                # value; when flag FETCHes follow, `flush_flags` raises it after them.
                told = self._modseq_told(flags_held=held)
                out.append(_highestmodseq(told))
                self._lowered = told < self.highestmodseq
        elif self._gone and self.condstore:
            # RFC 7162 §3.2: MODSEQs may go out while these expunges wait; a client taking
            # the highest MODSEQ it saw would then skip them after a disconnect.
            out.append(_highestmodseq(self._modseq_told(flags_held=held)))
            self._lowered = True
        if self._new:
            self.uids.extend(self._new)
            self._new.clear()
            # Straight to bytes: on a fan-out every listener sends these (no Value tree).
            if self.rev2:  # RFC 9051 Appendix A, E item 12: no RECENT
                out.append(Serialized(b"* %d EXISTS\r\n" % len(self.uids)))
            else:
                out.append(
                    Serialized(
                        b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(self.uids), self.recent_count())
                    )
                )
        return out

    def flush_flags(self, allow_flags: bool = True) -> list[Response]:
        """`flush`'s second part: FETCH for flag changes (none, and kept, when not
        ``allow_flags``)."""
        out: list[Response] = []
        if self._flags and allow_flags:
            for uid in sorted(self._flags):
                seq = self.seq_of(uid)
                flags, modseq = self._flags[uid]
                if seq is None or uid in self._gone:
                    continue
                out.append(self.fetch_flags_response(seq, uid, flags, modseq))
            self._flags.clear()
            if self._lowered and self.condstore and not self._gone:
                out.append(_highestmodseq(self.highestmodseq))  # all told: raise it again
                self._lowered = False
        return out

    def recent_count(self) -> int:
        """How many of the client's messages are \\Recent (few, as a rule: bisected
        rather than a set of the whole mailbox built for each new message)."""
        recent = self.recent
        if len(recent) * 16 < len(self.uids):
            return sum(1 for u in recent if self.seq_of(u) is not None)
        return len(recent & set(self.uids))

    def _expunge_responses(self) -> list[Response]:
        gone = sorted(u for u in self._gone if self.seq_of(u) is not None)
        self._gone.clear()
        self._gone_facts.clear()
        self._gone_modseq = 0
        if not gone:
            return []
        if self.qresync or self.uidonly:  # RFC 9586 §3.4, §3.6: VANISHED under UIDONLY
            # RFC 7162 §3.2.10.2: VANISHED without EARLIER, only UIDs the client numbers.
            for uid in gone:
                self._remove(uid)
            return [Untagged((Atom("VANISHED"), Atom(str(SequenceSet.from_values(gone)))))]
        out: list[Response] = []
        # Highest first, so each number sent is still valid when the client reads it.
        for uid in reversed(gone):
            seq = self.seq_of(uid)
            if seq is not None:
                self._remove(uid)
                out.append(Untagged((seq, Atom("EXPUNGE"))))
        return out

    def _remove(self, uid: int) -> None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            del self.uids[i]
        self.recent.discard(uid)

    def fetch_flags_response(
        self, seq: int, uid: int, flags: tuple[str, ...], modseq: int
    ) -> Untagged:
        items: list[Value] = [Atom("UID"), uid, Atom("FLAGS"), self.flags_with_recent(uid, flags)]
        if self.condstore:
            items += [Atom("MODSEQ"), (modseq,)]
        return Untagged((*self.fetch_head(seq, uid), tuple(items)))

    def fetch_head(self, seq: int, uid: int) -> tuple[int, Atom]:
        """What a FETCH response starts with: ``seq FETCH``, or ``uid UIDFETCH`` under
        UIDONLY (RFC 9586 §4: ``uidfetch-resp = uniqueid SP "UIDFETCH" SP msg-att``)."""
        return (uid, _UIDFETCH) if self.uidonly else (seq, _FETCH)

    def flags_with_recent(self, uid: int, flags: tuple[str, ...]) -> tuple[Value, ...]:
        if uid in self.recent and not self.rev2:
            return flag_list((*flags, "\\Recent"))
        return flag_list(flags)


_FETCH, _UIDFETCH = Atom("FETCH"), Atom("UIDFETCH")


def _highestmodseq(modseq: int) -> UntaggedStatus:
    return UntaggedStatus("OK", "Highest", f"HIGHESTMODSEQ {modseq}")


def flag_list(flags: tuple[str, ...] | list[str] | set[str]) -> tuple[Value, ...]:
    return tuple(Atom(f) for f in flags)


def system_and(keywords: set[str] | tuple[str, ...]) -> list[str]:
    return [*SYSTEM_FLAGS, *sorted(keywords)]
