"""SORT, UID SORT (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT RFC 5267 §3) and THREAD,
UID THREAD (RFC 5256 §3: ORDEREDSUBJECT, REFERENCES).

Thin on purpose: search criteria as SEARCH resolves them -> the store's sort order or thread
tree (store/sqlite_sort.py runs the pure algorithms of store/sortthread/ off the event loop
and caches their results) -> one response. Only messages the client has been told of are in
the results, as in SEARCH.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from imapd.commands.auth import enable
from imapd.commands.base import Outcome, ok
from imapd.commands.message import (
    check_search_keys,
    highest_modseq,
    mentions_modseq,
    to_criterion,
)
from imapd.protocol import commands as c
from imapd.protocol.responses import Atom, Raw, Untagged, Value
from imapd.protocol.sortthread import ordered_set, thread_data
from imapd.protocol.values import SearchKey

if TYPE_CHECKING:
    from imapd.selected import SelectedView
    from imapd.session import Session
    from store.api import Criterion

_ALL = SearchKey("AND", children=(SearchKey("ALL"),))


def _criterion(session: Session, view: SelectedView, key: SearchKey) -> Criterion | None:
    """The store criterion of a search program; None for a plain ALL."""
    check_search_keys(session, key)
    return None if key == _ALL else to_criterion(key, view, session.saved_search)


def _numbering(view: SelectedView, uids: list[int]) -> dict[int, int]:
    """UID -> sequence number for the messages of ``uids`` the client knows of."""
    known, numbers = view.numbered(sorted(uids))
    return dict(zip(known, numbers, strict=True))


async def handle_sort(session: Session, cmd: c.Sort) -> Outcome:
    """[UID] SORT [RETURN (MIN MAX COUNT ALL)] (criteria) charset keys. Examples: RFC 5256
    §3 (SORT), RFC 5267 §3.3 (ESORT). A MODSEQ key enables CONDSTORE and adds the highest
    mod-sequence of the messages returned (RFC 7162 §3.1.9, §3.1.10)."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    with_modseq = mentions_modseq(cmd.key)
    owed = enable(session, "CONDSTORE") if with_modseq else []
    order = await session.store.sort_order(view.mailbox_id, cmd.criteria)
    if criterion is not None:  # the whole mailbox's order, filtered: ties stay by seq
        matched = set(await session.store.search(view.mailbox_id, criterion))
        order = [u for u in order if u in matched]
    seq = _numbering(view, order)
    uids = [u for u in order if u in seq]  # only what the client was told of
    numbers = uids if cmd.uid else [seq[u] for u in uids]
    if cmd.return_opts is None:
        items: list[Value] = [Atom("SORT")]
        if numbers:
            items.append(Raw(" ".join(map(str, numbers)).encode("ascii")))
        modseq = await highest_modseq(session, view, sorted(uids)) if with_modseq else None
        if modseq is not None:
            items.append((Atom("MODSEQ"), modseq))  # RFC 7162 §3.1.9
        return ok("SORT completed", None, *owed, Untagged(tuple(items)))
    # RFC 5267 §3.1: ESEARCH's options, MIN and MAX the first and last in sort order;
    # RFC 4731 §3.1: RETURN () means ALL.
    wanted = set(cmd.return_opts) or {"ALL"}
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
    if with_modseq:  # RFC 7162 §3.1.10, RFC 4731 §3.2: of MIN/MAX alone, else of all
        ends = {uids[0] if o == "MIN" else uids[-1] for o in wanted & {"MIN", "MAX"} if uids}
        picked = sorted(ends) if not wanted & {"ALL", "COUNT"} else sorted(uids)
        modseq = await highest_modseq(session, view, picked)
        if modseq is not None:
            items += [Atom("MODSEQ"), modseq]
    return ok("SORT completed", None, *owed, Untagged(tuple(items)))


async def handle_thread(session: Session, cmd: c.Thread) -> Outcome:
    """[UID] THREAD ORDEREDSUBJECT|REFERENCES charset keys. Examples: RFC 5256 §3. A MODSEQ
    key enables CONDSTORE; the THREAD response is unchanged (RFC 7162 §3.1.9)."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    owed = enable(session, "CONDSTORE") if mentions_modseq(cmd.key) else []
    visible = list(view.uids)  # only what the client was told of (as SEARCH)
    roots = await session.store.thread_roots(view.mailbox_id, cmd.algorithm, criterion, visible)
    items: list[Value] = [Atom("THREAD")]
    if roots:
        number = int if cmd.uid else {u: i for i, u in enumerate(visible, 1)}.__getitem__
        items.append(Raw(await asyncio.to_thread(thread_data, roots, number)))
    return ok("THREAD completed", None, *owed, Untagged(tuple(items)))
