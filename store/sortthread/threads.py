"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3), step by step as written.

Both take `SortRecord` values in UID order (which is sequence-number order, the RFC's
tie-breaker) and return the top-level `Node` values of the thread tree in order. A `Node`
without a record is a dummy: a parent that was not among the searched messages. Everything
is iterative (a References chain of 10,000 messages is 10,000 levels deep); the one walk
whose cost grows with depth is the loop check of step 1, which the RFC requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from store.sortthread.records import SortRecord


class Node:
    """A thread member; ``record`` None: a dummy. ``children`` is an ordered set. The
    trees the kept state gives (threadstate.py) leave ``parent`` None: only the building
    here uses it. Compared and hashed by identity."""

    __slots__ = ("children", "parent", "record")

    def __init__(
        self,
        record: SortRecord | None = None,
        parent: Node | None = None,
        children: dict[Node, None] | None = None,
    ) -> None:
        self.record = record
        self.parent = parent
        self.children: dict[Node, None] = {} if children is None else children

    @property
    def uid(self) -> int | None:
        return None if self.record is None else self.record.uid


def _order(node: Node) -> tuple[int, int]:
    """Sent date (RFC 5256 §2.2), ties by sequence number; a dummy sorts as its first
    child (steps 4 and 6)."""
    while node.record is None:
        node = next(iter(node.children))
    return node.record.sent, node.record.uid


# ------------------------------------------------------------------------ ORDEREDSUBJECT


def ordered_subject(records: Sequence[SortRecord]) -> list[Node]:
    """Sort by base subject then sent date; one thread per base subject, its first message
    the root and every later one a child of it; threads by their first message's date."""
    ordered = sorted(records, key=lambda r: (r.keys.subject, r.sent))  # stable: seq ties
    threads: list[Node] = []
    for _, group in groupby(ordered, key=lambda r: r.keys.subject):
        first, *rest = group
        root = Node(first)
        for r in rest:
            root.children[Node(r, root)] = None
        threads.append(root)
    threads.sort(key=_order)
    return threads


# ---------------------------------------------------------------------------- REFERENCES


def _reaches(node: Node, ancestor: Node) -> bool:
    """``node`` is ``ancestor`` or one of its descendants."""
    n: Node | None = node
    while n is not None:
        if n is ancestor:
            return True
        n = n.parent
    return False


def _link(parent: Node, child: Node) -> None:
    child.parent = parent
    parent.children[child] = None


def _unlink(child: Node) -> None:
    if child.parent is not None:
        del child.parent.children[child]
        child.parent = None


def _build(records: Sequence[SortRecord]) -> list[Node]:
    """Step 1: link messages by their references; returns every node made, in order."""
    by_id: dict[str, Node] = {}
    nodes: list[Node] = []

    def lookup(msg_id: str) -> Node:
        node = by_id.get(msg_id)
        if node is None:  # no message (yet) with this id: a dummy, reused for the id
            node = by_id[msg_id] = Node()
            nodes.append(node)
        return node

    for rec in records:
        msg_id = rec.keys.message_id
        existing = by_id.get(msg_id) if msg_id is not None else None
        if existing is not None and existing.record is None:
            node = existing  # the dummy made for this id becomes this message
            node.record = rec
        else:  # a new id, none at all, or a duplicate: the latter two get a unique one
            node = Node(rec)
            nodes.append(node)
            if msg_id is not None and existing is None:
                by_id[msg_id] = node
        # (A) each reference the parent of the next, unless it has one or it makes a loop
        prev: Node | None = None
        for ref in rec.keys.references or ():
            ref_node = lookup(ref)
            if prev is not None and ref_node.parent is None and not _reaches(prev, ref_node):
                _link(prev, ref_node)
            prev = ref_node
        # (B) the last reference (or none) is the parent; an earlier link gives way
        _unlink(node)
        if prev is not None and not _reaches(prev, node):
            _link(prev, node)
    return nodes


def _prune(nodes: list[Node], roots: list[Node]) -> list[Node]:
    """Step 3: dummies go; their children take their place, except that several children
    of a top-level dummy stay under it (they would become children of the root). Only the
    parents of dummies are visited; a dummy spliced away is left childless, so whichever of
    a dummy and its parent is visited first, the children end up in the right place."""
    parents = dict.fromkeys(n.parent for n in nodes if n.record is None and n.parent)
    for node in parents:
        kids = node.children
        while any(c.record is None for c in kids):
            kept: dict[Node, None] = {}
            for child in kids:
                if child.record is not None:
                    kept[child] = None
                    continue
                for grandchild in child.children:
                    grandchild.parent = node
                    kept[grandchild] = None
                child.children = {}
                child.parent = None
            kids = kept
        node.children = kids
    top: list[Node] = []
    for node in roots:
        if node.record is not None or len(node.children) > 1:
            top.append(node)
        elif node.children:  # one child: it is promoted to the root
            child = next(iter(node.children))
            child.parent = None
            top.append(child)
    return top


def _thread_subject(node: Node) -> str:
    first = node if node.record is not None else next(iter(node.children))
    assert first.record is not None
    return first.record.keys.subject


def _is_reply(node: Node) -> bool:
    return node.record is not None and node.record.keys.reply


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """Step 5: threads with the same base subject are gathered."""
    table: dict[str, Node] = {}
    for node in roots:  # (B)
        subject = _thread_subject(node)
        if not subject:
            continue
        held = table.get(subject)
        # (iv) the first of a subject, or a better one: a dummy, or a non-reply over a reply
        if held is None or (
            held.record is not None
            and (node.record is None or (_is_reply(held) and not _is_reply(node)))
        ):
            table[subject] = node
    top: dict[Node, None] = dict.fromkeys(roots)
    for node in roots:  # (C)
        if node not in top:
            continue  # already merged under another thread
        subject = _thread_subject(node)
        if not subject:
            continue
        held = table[subject]
        if held is node:
            continue
        del top[node]
        if node.record is None and held.record is None:
            for child in list(node.children):
                _link(held, child)
        elif held.record is None or (_is_reply(node) and not _is_reply(held)):
            _link(held, node)
        else:
            dummy = Node()
            del top[held]
            top[dummy] = None
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
    return list(top)


def _sort_all(nodes: list[Node], roots: list[Node]) -> list[Node]:
    """Step 6: every set of siblings by sent date. Below the root every node is a message,
    sorting as itself, so the sets may be sorted in any order; dummies (top-level only) sort
    as their first child, so theirs are sorted before the top level is."""
    for node in (*nodes, *roots):
        if len(node.children) > 1:
            node.children = dict.fromkeys(sorted(node.children, key=_order))
    return sorted(roots, key=_order)


def references(records: Sequence[SortRecord]) -> list[Node]:
    """THREAD=REFERENCES: steps 1 to 6 of RFC 5256 §3. ``records`` need their
    ``keys.references`` read."""
    nodes = _build(records)
    roots = [n for n in nodes if n.parent is None]  # (2)
    roots = _prune(nodes, roots)  # (3)
    for node in roots:  # (4): a dummy's children first, so it sorts as its first child
        if node.record is None:
            node.children = dict.fromkeys(sorted(node.children, key=_order))
    roots.sort(key=_order)
    roots = _merge_subjects(roots)  # (5)
    return _sort_all(nodes, roots)  # (6)
