"""RFC 5267 §4 contexts (CONTEXT=SEARCH, CONTEXT=SORT), the pure part: one session's
updating contexts, what changed for them, and the ESEARCH ADDTO/REMOVEFROM and PARTIAL
responses. No I/O.

The layers: the grammar in imapd/protocol/parser/context.py; the searching commands
(imapd/commands/message.py SEARCH, imapd/commands/sort.py SORT) open a context through
imapd/commands/updates.py, which also holds CANCELUPDATE and the evaluation that needs the
store; imapd/listening.py calls it where the selected mailbox's updates go out.

Owns: `UpdateContext` (the tag, the search program as a live store criterion, the sort
criteria, the fetch-atts of RFC 5465 §7, and the result as UIDs in the requested order: the
mailbox order for SEARCH, the sort order for SORT), `UpdateContexts` (a session's, with the
limit and the changes noted from the feed), the evaluation of a program over a change's
facts when its keys allow it (`match_facts`), and the rendering.

How a context follows the mailbox (docs/context.md):
- The feed's changes are noted as they are applied to the SelectedView (`note`): new UIDs
  and flag-changed UIDs are evaluated again (flag changes only when the flag FETCHes go
  out, RFC 5465 §5.1); expunged members leave the result with a REMOVEFROM sent before the
  EXPUNGE, in the numbers the client still uses (RFC 5267 §4.3.4).
- Only the changed messages are evaluated: from the change's facts when the program tests
  flags, keywords, UIDs, MODSEQ, size or \\Recent only, else by the store over those UIDs.
- Positions in a SORT context come from the store's sort keys of the mailbox (kept up to
  date per change, shared between sessions: store/sortstate.py); a SEARCH context uses
  position 0 and mailbox order (§4.3.3).
Must not import asyncio or the store implementation.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imapd.protocol.responses import Atom, Raw, Untagged, UntaggedStatus, Value
from imapd.protocol.sortthread import ordered_set
from imapd.protocol.values import FetchAtt, SearchKey, SequenceSet
from imapd.selected import SelectedView
from store.api import Criterion
from store.changes import Change, FlagsChanged, MessagesAdded, MessagesExpunged
from store.ranges import number_ranges

#: Contexts one session may keep updated (RFC 5267 §4.3.1: at least one; Dovecot keeps
#: CLIENT_MAX_SEARCH_UPDATES = 10). The configured value is ``[limits] max_update_contexts``.
DEFAULT_LIMIT = 10
#: Search keys whose result changes with time alone (RFC 5032): no change of a message
#: tells when to report it, so UPDATE is refused for them (NOUPDATE, §4.3.1).
TIME_KEYS = frozenset({"OLDER", "YOUNGER"})
#: The symbolic \Recent of a live program, replaced by the session's \Recent UIDs when the
#: program is evaluated (new messages become \Recent after the context was made).
RECENT = "RECENT"

_FLAG_KEYS = {
    "ANSWERED": "\\Answered",
    "DELETED": "\\Deleted",
    "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged",
    "SEEN": "\\Seen",
}


# --- the live search program ------------------------------------------------------------
def live_criterion(key: SearchKey, view: SelectedView, saved: list[int]) -> Criterion:
    """The program of an updating context: sequence numbers and ``$`` resolved now, into
    UIDs ("evaluated at the time the command is received", RFC 5267 §4.3), UID sets as
    ranges with ``*`` the largest UID now, RECENT/NEW/OLD left symbolic (`RECENT`)."""
    match key.name:
        case "SEQSET":
            assert isinstance(key.value, SequenceSet)
            uids = view.resolve(key.value, uid=False, saved=saved, lenient=True)
            return Criterion("UIDS", tuple(number_ranges(uids)))
        case "UID":
            assert isinstance(key.value, SequenceSet)
            if key.value.saved:
                uids = view.resolve(key.value, uid=True, saved=saved)
                return Criterion("UIDS", tuple(number_ranges(uids)))
            largest = view.uids[-1] if view.uids else 0
            return Criterion("UIDS", tuple(key.value.merged(largest)))
        case "RECENT":
            return Criterion(RECENT)
        case "NEW":
            return Criterion("AND", children=(Criterion(RECENT), Criterion("UNSEEN")))
        case "OLD":
            return Criterion("NOT", children=(Criterion(RECENT),))
        case _:
            kids = tuple(live_criterion(k, view, saved) for k in key.children)
            value = key.value
            assert not isinstance(value, SequenceSet)
            return Criterion(key.name, value, key.header, kids)


def mentions(key: SearchKey, names: frozenset[str]) -> bool:
    """Whether a key named in ``names`` is in the program (iterative: programs are deep)."""
    stack = [key]
    while stack:
        k = stack.pop()
        if k.name in names:
            return True
        stack.extend(k.children)
    return False


def thaw(criterion: Criterion, recent: Iterable[int]) -> Criterion:
    """``criterion`` for the store: `RECENT` replaced by the UIDs now \\Recent here."""
    if criterion.name == RECENT:
        return Criterion("UIDS", tuple(number_ranges(recent)))
    if not criterion.children:
        return criterion
    kids = tuple(thaw(k, recent) for k in criterion.children)
    return Criterion(criterion.name, criterion.value, criterion.header, kids)


@dataclass(frozen=True, slots=True)
class Facts:
    """What a change says of a message: enough to evaluate flag-only programs. ``size``
    None: not known (a flag change)."""

    flags: tuple[str, ...]
    modseq: int
    size: int | None = None


def match_facts(
    c: Criterion, uid: int, facts: Facts, recent: set[int] | frozenset[int]
) -> bool | None:
    """Whether the message matches, from its facts alone; None when ``c`` tests anything
    else (text, dates, ...: the store decides). Mirrors store/sqlite/search.py: system
    flags exactly, keywords case-insensitively, MODSEQ "equal to or greater" (RFC 7162
    §3.1.5), LARGER/SMALLER strictly."""
    name = c.name.upper()
    if name in {"AND", "OR"}:
        results = [match_facts(k, uid, facts, recent) for k in c.children]
        if any(r is None for r in results):
            return None
        return all(results) if name == "AND" else any(results)
    if name == "NOT":
        inner = match_facts(c.children[0], uid, facts, recent) if len(c.children) == 1 else None
        return None if inner is None else not inner
    if name == "ALL":
        return True
    if name == RECENT:
        return uid in recent
    if name in _FLAG_KEYS:
        return _FLAG_KEYS[name] in facts.flags
    if name.startswith("UN") and name[2:] in _FLAG_KEYS:
        return _FLAG_KEYS[name[2:]] not in facts.flags
    if name in {"KEYWORD", "UNKEYWORD"} and isinstance(c.value, str):
        wanted = c.value.lower()
        has = any(f.lower() == wanted for f in facts.flags)
        return has if name == "KEYWORD" else not has
    if name == "MODSEQ" and isinstance(c.value, int):
        return facts.modseq >= c.value
    if name in {"LARGER", "SMALLER"} and isinstance(c.value, int) and facts.size is not None:
        return facts.size > c.value if name == "LARGER" else facts.size < c.value
    if name in {"UIDS", "UID"} and isinstance(c.value, tuple):
        return any(lo <= uid <= hi for lo, hi in c.value)
    return None


# --- one context ----------------------------------------------------------------------------
@dataclass(slots=True)
class UpdateContext:
    """One UPDATE context: ``results`` are UIDs in the requested order (``members`` the same
    as a set); ``dirty`` UIDs wait to be evaluated, ``held`` flag-changed UIDs wait for the
    flag FETCHes to go out; ``verdicts`` the evaluation not yet applied."""

    tag: str
    uid: bool
    criterion: Criterion
    sort: tuple[tuple[str, bool], ...] | None  # None: SEARCH, mailbox order
    fetch_atts: tuple[FetchAtt, ...]
    results: list[int]
    members: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    verdicts: dict[int, bool] = field(default_factory=dict)
    #: SORT: every UID's key in the mailbox's sort order (the store's live mapping, keys
    #: compare as the order goes), for the positions: new members placed by bisection.
    rank: Mapping[int, Any] | None = None

    def __post_init__(self) -> None:
        self.members = set(self.results)

    def take(self, *, allow_flags: bool) -> set[int]:
        """The UIDs to evaluate now (those held for the flag FETCHes too when allowed)."""
        if allow_flags and self.held:
            self.dirty |= self.held
            self.held.clear()
        uids, self.dirty = self.dirty, set()
        return uids

    def joining(self) -> list[int]:
        """UIDs evaluated as matching that are not in the result yet."""
        return [u for u, ok in self.verdicts.items() if ok and u not in self.members]

    def _items(self, view: SelectedView, removed: list[int], added: list[int]) -> list[Value]:
        """REMOVEFROM then ADDTO for ``removed`` (members) and ``added`` (told, ranked),
        applying them to ``results`` as the client will (RFC 5267 §4.3.2-§4.3.4)."""
        items: list[Value] = []
        if removed:
            items += [Atom("REMOVEFROM"), Raw(self._remove(view, removed))]
        if added:
            items += [Atom("ADDTO"), Raw(self._add(view, added))]
        return items

    def _number(self, view: SelectedView, uids: Sequence[int]) -> list[int]:
        if self.uid:
            return list(uids)
        return [n for u in uids if (n := view.seq_of(u)) is not None]

    def _remove(self, view: SelectedView, removed: list[int]) -> bytes:
        gone = set(removed)
        if self.sort is None:  # RFC 5267 §4.3.4: position 0, mailbox order
            numbers = self._number(view, sorted(gone))
            if len(gone) * 8 > len(self.results):
                self.results = [u for u in self.results if u not in gone]
            else:
                for u in gone:
                    del self.results[bisect_left(self.results, u)]
            self.members -= gone
            return b"(0 %s)" % _set(numbers)
        # SORT: runs of consecutive positions, the last run first, so that each position
        # is still right when the client reaches it.
        if len(gone) * 8 > len(self.results):
            positions = [i for i, u in enumerate(self.results) if u in gone]
        else:
            positions = sorted(self.results.index(u) for u in gone)
        runs: list[tuple[int, int]] = []
        for i in positions:
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        parts = []
        for lo, hi in reversed(runs):
            numbers = self._number(view, self.results[lo : hi + 1])
            parts.append(b"%d %s" % (lo + 1, ordered_set(numbers).encode("ascii")))
            del self.results[lo : hi + 1]
        self.members -= gone
        return b"(" + b" ".join(parts) + b")"

    def _add(self, view: SelectedView, added: list[int]) -> bytes:
        if self.sort is None:  # position 0, mailbox order (RFC 5267 §4.3.3: RECOMMENDED)
            ordered = sorted(added)
            if len(added) > 16:
                self.results = sorted(self.results + ordered)  # two runs: a linear merge
            else:
                for u in ordered:
                    insort(self.results, u)
            self.members.update(added)
            return b"(0 %s)" % _set(self._number(view, ordered))
        rank = self.rank
        assert rank is not None
        ordered = sorted(added, key=rank.__getitem__)
        new = set(added)
        if len(added) > 16:  # many: merge the two runs, then read the positions off
            self.results = sorted(self.results + ordered, key=rank.__getitem__)
            found = [(i + 1, u) for i, u in enumerate(self.results) if u in new]
        else:
            # Where each goes among the results before any insertion; the k-th added
            # then lands at that index + k (the earlier ones are before it).
            at = [bisect_left(self.results, rank[u], key=rank.__getitem__) for u in ordered]
            found = []
            for k, (u, i) in enumerate(zip(ordered, at, strict=True)):
                self.results.insert(i + k, u)
                found.append((i + k + 1, u))
        runs: list[tuple[int, list[int]]] = []
        for pos, u in found:
            if runs and runs[-1][0] + len(runs[-1][1]) == pos:
                runs[-1][1].append(u)
            else:
                runs.append((pos, [u]))
        self.members |= new
        return (
            b"("
            + b" ".join(
                b"%d %s" % (pos, ordered_set(self._number(view, uids)).encode("ascii"))
                for pos, uids in runs
            )
            + b")"
        )

    def response(self, items: list[Value]) -> Untagged:
        head: list[Value] = [Atom("ESEARCH"), (Atom("TAG"), self.tag)]
        if self.uid:
            head.append(Atom("UID"))
        return Untagged((*head, *items))


# --- a session's contexts ---------------------------------------------------------------------
class UpdateContexts:
    """The updating contexts of one session and the changes noted for them (see the module
    docstring). Cleared when the mailbox is left or another selected (RFC 5267 §4.3)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.contexts: dict[str, UpdateContext] = {}
        #: Members expunged from the store: REMOVEFROM before the EXPUNGE.
        self._expunged: set[int] = set()
        #: What the feed said of the changed messages, newest last (`match_facts`).
        self.facts: dict[int, Facts] = {}

    def __bool__(self) -> bool:
        return bool(self.contexts)

    def __len__(self) -> int:
        return len(self.contexts)

    def all(self) -> list[UpdateContext]:
        return list(self.contexts.values())

    def in_use(self, tag: str) -> bool:
        return tag in self.contexts

    def add(self, context: UpdateContext) -> None:
        self.contexts[context.tag] = context

    def cancel(self, tags: Iterable[str]) -> None:
        for tag in tags:
            self.contexts.pop(tag, None)
        if not self.contexts:
            self.clear()

    def clear(self) -> None:
        self.contexts.clear()
        self._expunged.clear()
        self.facts.clear()

    @property
    def fetching(self) -> bool:
        """Some context asked for fetch-atts of new members (RFC 5465 §7)."""
        return any(ctx.fetch_atts for ctx in self.contexts.values())

    def note(self, change: Change, mailbox_id: int) -> None:
        """Record a change of the selected mailbox (after the SelectedView applied it)."""
        if not self.contexts:
            return
        match change:
            case MessagesAdded() if change.mailbox.id == mailbox_id:
                uids = [m.uid for m in change.messages]
                for m in change.messages:
                    self.facts[m.uid] = Facts(m.flags, m.modseq, m.size)
                for ctx in self.contexts.values():
                    ctx.dirty.update(uids)
            case FlagsChanged() if change.mailbox.id == mailbox_id:
                uids = [fc.uid for fc in change.changes]
                for fc in change.changes:
                    known = self.facts.get(fc.uid)
                    self.facts[fc.uid] = Facts(fc.flags, fc.modseq, known.size if known else None)
                for ctx in self.contexts.values():
                    ctx.held.update(uids)
            case MessagesExpunged() if change.mailbox.id == mailbox_id:
                gone = {m.uid for m in change.messages}
                for uid in gone:
                    self.facts.pop(uid, None)
                for ctx in self.contexts.values():
                    ctx.dirty -= gone
                    ctx.held -= gone
                    for uid in gone:
                        ctx.verdicts.pop(uid, None)
                self._expunged |= gone
            case _:
                pass

    def expunge_removals(self, view: SelectedView) -> list[Untagged]:
        """REMOVEFROM for expunged members, in the numbers the client uses before the
        EXPUNGE that follows (RFC 5267 §4.3.4: "MUST be sent prior to the expunge
        notification itself"); also while EXPUNGE must wait (Appendix A.3)."""
        gone, self._expunged = self._expunged, set()
        out: list[Untagged] = []
        if not gone:
            return out
        for ctx in self.contexts.values():
            removed = [u for u in gone if u in ctx.members]
            if removed:
                out.append(ctx.response(ctx._items(view, removed, [])))
        return out

    def fetch_atts(self, uid: int) -> tuple[FetchAtt, ...]:
        """The fetch-atts of the contexts ``uid`` joins now (RFC 5465 §7), merged."""
        atts: list[FetchAtt] = []
        for ctx in self.contexts.values():
            if ctx.fetch_atts and ctx.verdicts.get(uid) and uid not in ctx.members:
                atts += ctx.fetch_atts
        return tuple(dict.fromkeys(atts))

    def fetch_groups(
        self, uids: list[int], base: tuple[FetchAtt, ...]
    ) -> list[tuple[tuple[FetchAtt, ...], list[int]]]:
        """New messages by the attributes to FETCH for them: ``base`` (NOTIFY's MessageNew)
        merged with those of the contexts each joins, each item once (RFC 5465 §5.2)."""
        if not self.contexts:  # the NOTIFY fan-out's case: one group, nothing to merge
            return [(base, uids)] if base and uids else []  # base: each item once
        groups: dict[tuple[FetchAtt, ...], list[int]] = {}
        for uid in uids:
            atts = tuple(dict.fromkeys((*base, *self.fetch_atts(uid))))
            if atts:
                groups.setdefault(atts, []).append(uid)
        return list(groups.items())

    def render(self, view: SelectedView) -> list[Untagged]:
        """Apply the verdicts: one ESEARCH per changed context, REMOVEFROM then ADDTO, in the
        numbers the client uses after this flush (after the EXISTS of new messages, RFC 5267
        §4.3.3; after their FETCH, RFC 5465 §5.1, §7). A matching message the client does
        not number yet, or whose sort position is not known yet, waits for the next time."""
        out: list[Untagged] = []
        for ctx in self.contexts.values():
            verdicts, ctx.verdicts = ctx.verdicts, {}
            if not verdicts:
                continue
            removed = [u for u, ok in verdicts.items() if not ok and u in ctx.members]
            added: list[int] = []
            for u, ok in verdicts.items():
                if not ok or u in ctx.members:
                    continue
                told = view.seq_of(u) is not None and not view.is_gone(u)
                if told and (ctx.sort is None or (ctx.rank is not None and u in ctx.rank)):
                    added.append(u)
                else:
                    ctx.dirty.add(u)  # not numbered yet, or not in the sort order yet
            if ctx.sort is not None and added and not _ranked(ctx, added):
                ctx.dirty.update(added)  # a member left the store ahead of the feed
                added = []
            items = ctx._items(view, removed, added)
            ctx.rank = None
            if items:
                out.append(ctx.response(items))
        return out


def _ranked(ctx: UpdateContext, added: list[int]) -> bool:
    """Every UID the insertion may compare has a rank (a member expunged in the store but
    not yet in the feed has none): the bisections are tried, or every member for many."""
    rank = ctx.rank
    if rank is None:
        return False
    if len(added) > 16:
        return all(u in rank for u in ctx.results)
    try:
        for u in added:
            bisect_left(ctx.results, rank[u], key=rank.__getitem__)
    except KeyError:
        return False
    return True


def _set(numbers: list[int]) -> bytes:
    return str(SequenceSet.from_values(numbers)).encode("ascii")


# --- PARTIAL and the refusal ----------------------------------------------------------------
def partial_item(requested: tuple[int, int], numbers: Sequence[int], *, sort: bool) -> list[Value]:
    """``PARTIAL (low:high set)`` or ``... NIL)`` (RFC 5267 §4.4): results ``low`` to ``high``
    (1-based, either order) of ``numbers`` in the requested order. The range is echoed low
    first: ``4:2`` and ``2:4`` are one range (as sequence ranges are, RFC 3501 §9), and
    Dovecot (imaptest's search-partial, sort-partial) answers ``2:4`` to both."""
    low, high = sorted(requested)
    window = numbers[low - 1 : high]
    if not window:
        found = b"NIL"
    elif sort:
        found = ordered_set(window).encode("ascii")
    else:
        found = str(SequenceSet.from_values(list(window))).encode("ascii")
    return [Atom("PARTIAL"), Raw(b"(%d:%d %s)" % (low, high, found))]


def noupdate(tag: str, text: str) -> UntaggedStatus:
    """``* NO [NOUPDATE "tag"] text`` (RFC 5267 §4.3.1)."""
    return UntaggedStatus("NO", text, f"NOUPDATE {_quoted(tag)}")


def _quoted(tag: str) -> str:
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'
