"""SORT, UID SORT (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT RFC 5267 §3) and THREAD,
UID THREAD (RFC 5256 §3: ORDEREDSUBJECT, REFERENCES).

Thin on purpose: search criteria as SEARCH resolves them -> the store's sort records of the
matching messages -> the pure algorithms of store/sortthread/, run off the event loop (10,000
messages take tens of milliseconds) -> one response. Only messages the client has been told
of are in the results, as in SEARCH.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from imapd.commands.base import Outcome, ok
from imapd.commands.message import check_search_keys, to_criterion
from imapd.protocol import commands as c
from imapd.protocol.responses import Atom, Raw, Untagged, Value
from imapd.protocol.sortthread import ordered_set, thread_data
from store.sortthread.records import SortRecord
from store.sortthread.sorting import sort_records
from store.sortthread.threads import ordered_subject, references

if TYPE_CHECKING:
    from imapd.protocol.values import SearchKey
    from imapd.selected import SelectedView
    from imapd.session import Session


async def _records(
    session: Session, view: SelectedView, key: SearchKey, *, refs: bool = False
) -> tuple[list[SortRecord], dict[int, int]]:
    """The matching messages the client knows of, in UID order, and UID -> sequence number."""
    check_search_keys(session, key)
    criterion = to_criterion(key, view, session.saved_search)
    records = await session.store.sort_records(view.mailbox_id, criterion, references=refs)
    known, numbers = view.numbered([r.uid for r in records])
    if len(known) != len(records):
        told = set(known)
        records = [r for r in records if r.uid in told]
    return records, dict(zip(known, numbers, strict=True))


async def handle_sort(session: Session, cmd: c.Sort) -> Outcome:
    """[UID] SORT [RETURN (MIN MAX COUNT ALL)] (criteria) charset keys. Examples: RFC 5256
    §3 (SORT), RFC 5267 §3.3 (ESORT)."""
    view = session.require_view()
    records, seq = await _records(session, view, cmd.key)
    ordered = await asyncio.to_thread(sort_records, records, cmd.criteria)
    numbers = [r.uid for r in ordered] if cmd.uid else [seq[r.uid] for r in ordered]
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
    by_refs = cmd.algorithm == "REFERENCES"
    records, seq = await _records(session, view, cmd.key, refs=by_refs)
    roots = await asyncio.to_thread(references if by_refs else ordered_subject, records)
    items: list[Value] = [Atom("THREAD")]
    if roots:
        number = int if cmd.uid else seq.__getitem__
        items.append(Raw(await asyncio.to_thread(thread_data, roots, number)))
    return ok("THREAD completed", None, Untagged(tuple(items)))
