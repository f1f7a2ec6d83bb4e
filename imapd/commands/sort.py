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

from imapd.commands.base import Outcome, ok
from imapd.commands.message import check_search_keys, to_criterion
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
    §3 (SORT), RFC 5267 §3.3 (ESORT)."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    order = await session.store.sort_order(view.mailbox_id, cmd.criteria)
    if criterion is not None:  # the whole mailbox's order, filtered: ties stay by seq
        matched = set(await session.store.search(view.mailbox_id, criterion))
        order = [u for u in order if u in matched]
    seq = _numbering(view, order)
    if cmd.uid:
        numbers = [u for u in order if u in seq]
    else:
        numbers = [n for u in order if (n := seq.get(u)) is not None]
    if cmd.return_opts is None:
        items: list[Value] = [Atom("SORT")]
        if numbers:
            items.append(Raw(" ".join(map(str, numbers)).encode("ascii")))
        return ok("SORT completed", None, Untagged(tuple(items)))
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
    return ok("SORT completed", None, Untagged(tuple(items)))


async def handle_thread(session: Session, cmd: c.Thread) -> Outcome:
    """[UID] THREAD ORDEREDSUBJECT|REFERENCES charset keys. Examples: RFC 5256 §3."""
    view = session.require_view()
    criterion = _criterion(session, view, cmd.key)
    visible = list(view.uids)  # only what the client was told of (as SEARCH)
    roots = await session.store.thread_roots(view.mailbox_id, cmd.algorithm, criterion, visible)
    items: list[Value] = [Atom("THREAD")]
    if roots:
        number = int if cmd.uid else {u: i for i, u in enumerate(visible, 1)}.__getitem__
        items.append(Raw(await asyncio.to_thread(thread_data, roots, number)))
    return ok("THREAD completed", None, Untagged(tuple(items)))
