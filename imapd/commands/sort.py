"""SORT, UID SORT (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT RFC 5267 §3) and THREAD,
UID THREAD (RFC 5256 §3: ORDEREDSUBJECT, REFERENCES).

Thin on purpose: search criteria as SEARCH resolves them -> the store's sort order or thread
tree (store/sqlite/sort.py runs the pure algorithms of store/sortthread/ off the event loop
and caches their results) -> one response. Only messages the client has been told of are in
the results, as in SEARCH.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.message import (
    check_search_keys,
    highest_modseq,
    mentions_modseq,
    to_criterion,
)
from imapd.commands.updates import open_context, prepare_update
from imapd.protocol import commands as c
from imapd.protocol.responses import Atom, Raw, Untagged, Value
from imapd.protocol.sortthread import ThreadNode, ordered_set, thread_lists
from imapd.protocol.values import SearchKey
from imapd.rfc5267 import partial_item

if TYPE_CHECKING:
    from imapd.commands.context import Context
    from imapd.selected import SelectedView
    from store.api import Criterion

_ALL = SearchKey("AND", children=(SearchKey("ALL"),))


def _criterion(session: Context, view: SelectedView, key: SearchKey) -> Criterion | None:
    """The store criterion of a search program; None for a plain ALL."""
    check_search_keys(session, key)
    return None if key == _ALL else to_criterion(key, view, session.saved_search)


def _told(view: SelectedView, order: list[int], uid: bool) -> tuple[list[int], list[int]]:
    """Of ``order``, the UIDs the client was told of, in that order, and the numbers to
    send for them (the UIDs themselves, or their sequence numbers)."""
    own = view.uids
    if not own:
        return [], []
    low, high = own[0], own[-1]
    if high - low + 1 == len(own):  # never expunged: a number is an offset (10,000 UIDs)
        uids = [u for u in order if low <= u <= high]
        return uids, uids if uid else list(map((1 - low).__add__, uids))
    known, numbers = view.numbered(sorted(order))
    seq = dict(zip(known, numbers, strict=True))
    uids = [u for u in order if u in seq]
    return uids, uids if uid else [seq[u] for u in uids]


async def handle_sort(session: Context, cmd: c.Sort) -> Outcome:
    """[UID] SORT [RETURN (MIN MAX COUNT ALL CONTEXT UPDATE PARTIAL)] (criteria) charset keys.
    Examples: RFC 5256 §3 (SORT), RFC 5267 §3.3 (ESORT), §4 (CONTEXT=SORT). A MODSEQ key
    enables CONDSTORE and adds the highest mod-sequence of the messages returned (RFC 7162
    §3.1.9, §3.1.10)."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    live = prepare_update(session, cmd.tag, cmd.update, cmd.key)  # RFC 5267 §4.3
    with_modseq = mentions_modseq(cmd.key)
    owed = enable(session, "CONDSTORE") if with_modseq else []
    order = await session.store.sort_order(view.mailbox_id, cmd.criteria)
    if criterion is not None:  # the whole mailbox's order, filtered: ties stay by seq
        matched = set(await session.store.search(view.mailbox_id, criterion))
        order = [u for u in order if u in matched]
    uids, numbers = _told(view, order, cmd.uid)
    if cmd.return_opts is None:
        items: list[Value] = [Atom("SORT")]
        if numbers:
            items.append(Raw(" ".join(map(str, numbers)).encode("ascii")))
        modseq = await highest_modseq(session, view, sorted(uids)) if with_modseq else None
        if modseq is not None:
            items.append((Atom("MODSEQ"), modseq))  # RFC 7162 §3.1.9
        return ok("SORT completed", None, *owed, Untagged(tuple(items)))
    # RFC 5267 §3.1: ESEARCH's options, MIN and MAX the first and last in sort order;
    # RFC 4731 §3.1: RETURN () means ALL, and so does the hint CONTEXT alone (§4.2); UPDATE
    # returns nothing itself (§4.3), PARTIAL a window of the sort order (§4.4).
    opts = set(cmd.return_opts)
    wanted = opts - {"CONTEXT", "UPDATE"} if opts - {"CONTEXT"} else {"ALL"}
    refused = open_context(session, cmd, live, uids)  # NOUPDATE (RFC 5267 §4.3.1), or none
    items = [Atom("ESEARCH"), (Atom("TAG"), cmd.tag)]
    if cmd.uid:
        items.append(Atom("UID"))
    if numbers and "MIN" in wanted:
        items += [Atom("MIN"), numbers[0]]
    if numbers and "MAX" in wanted:
        items += [Atom("MAX"), numbers[-1]]
    if "COUNT" in wanted:
        items += [Atom("COUNT"), len(numbers)]
    if numbers and "ALL" in wanted:
        items += [Atom("ALL"), Raw(ordered_set(numbers).encode("ascii"))]
    if cmd.partial is not None:
        items += partial_item(cmd.partial, numbers, sort=True)
    if with_modseq:  # RFC 7162 §3.1.10, RFC 4731 §3.2: of MIN/MAX alone, else of all
        ends = {uids[0] if o == "MIN" else uids[-1] for o in wanted & {"MIN", "MAX"} if uids}
        picked = sorted(ends) if not wanted & {"ALL", "COUNT", "PARTIAL"} else sorted(uids)
        modseq = await highest_modseq(session, view, picked)
        if modseq is not None:
            items += [Atom("MODSEQ"), modseq]
    return ok("SORT completed", None, *owed, Untagged(tuple(items)), *refused)


async def handle_thread(session: Context, cmd: c.Thread) -> Outcome:
    """[UID] THREAD ORDEREDSUBJECT|REFERENCES charset keys. Examples: RFC 5256 §3. A MODSEQ
    key enables CONDSTORE; the THREAD response is unchanged (RFC 7162 §3.1.9)."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    owed = enable(session, "CONDSTORE") if mentions_modseq(cmd.key) else []
    visible = list(view.uids)  # only what the client was told of (as SEARCH)
    roots = await session.store.thread_roots(view.mailbox_id, cmd.algorithm, criterion, visible)
    items: list[Value] = [Atom("THREAD")]
    if roots:
        items.append(Raw(await _rendered(roots, cmd.uid, visible)))
    return ok("THREAD completed", None, *owed, Untagged(tuple(items)))


#: Rendered thread-data of the last trees (the store shares a cached tree between commands
#: and sessions), the last 4: (tree, UID form) -> (tree, the numbering's UIDs, bytes, each
#: top-level thread's text). The kept trees of a growing mailbox share the nodes of every
#: thread no new message touched (store/sortthread/threadstate.py): those threads' texts
#: are taken from the last rendering whose numbers still hold (UIDs, or sequence numbers
#: when the earlier UIDs are a prefix of the new ones: only appends in between).
_RENDERED: OrderedDict[
    tuple[int, bool], tuple[Sequence[ThreadNode], list[int], bytes, dict[ThreadNode, str]]
] = OrderedDict()
_RENDERED_MAX = 4


async def _rendered(roots: Sequence[ThreadNode], uid: bool, visible: list[int]) -> bytes:
    """thread-data for ``roots``, numbers from ``visible`` (UIDs, ascending) unless ``uid``;
    rendered in a worker thread (the threads already rendered reused), the last few
    remembered."""
    key = (id(roots), uid)
    found = _RENDERED.get(key)
    if found is not None and found[0] is roots and (uid or found[1] == visible):
        _RENDERED.move_to_end(key)
        return found[2]
    known: dict[ThreadNode, str] | None = None
    for (_, was_uid), (_, numbered, _, texts) in reversed(_RENDERED.items()):
        if was_uid == uid and (uid or visible[: len(numbered)] == numbered):
            known = texts
            break
    data, texts = await asyncio.to_thread(_render, roots, uid, visible, known)
    _RENDERED[key] = (roots, visible, data, texts)
    while len(_RENDERED) > _RENDERED_MAX:
        _RENDERED.popitem(last=False)
    return data


def _render(
    roots: Sequence[ThreadNode],
    uid: bool,
    visible: list[int],
    known: dict[ThreadNode, str] | None,
) -> tuple[bytes, dict[ThreadNode, str]]:
    seq: dict[int, int] = {}

    def number(u: int) -> int:
        if not seq:
            seq.update((v, i) for i, v in enumerate(visible, 1))
        return seq[u]

    lists = thread_lists(roots, int if uid else number, known)
    return "".join(lists).encode("ascii"), dict(zip(roots, lists, strict=True))
