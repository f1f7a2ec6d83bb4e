"""THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256 §3) kept across appends: a new
message costs its own thread, not the mailbox.

`ReferencesState` keeps step 1 of the REFERENCES algorithm (the id table and the containers
with their parent links) from one call to the next. Step 1 takes the messages one by one in
sequence order, and appended messages come last, so continuing it with the new messages
gives exactly the links a full run would. Steps 2 to 6 never change those containers: each
root's pruned (step 3) and sorted (step 6) subtree is built once into fresh `Node` values
and kept until a link below that root changes; only the roots that a new message touched
(the roots of every container it linked, unlinked or made) are built again. Subject
gathering (step 5) works on the roots of one base subject alone, so a subject's merged
thread is kept until its roots change; the top level is sorted again (step 6), which costs
the number of threads. Expunging a message can undo any link, so the owner
(store/sortthread/incremental.py) then starts a new state: a full run of the same code.

`SubjectState` keeps ORDEREDSUBJECT's groups (one per base subject, sorted by sent date and
sequence number) and each group's thread.

`threads.py` holds the algorithms as the RFC writes them, the reference these are tested
against (tests/store/test_threadstate.py). Pure: no IO, no asyncio.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Final

from store.sortthread.records import SortRecord
from store.sortthread.threads import Node

Key = tuple[int, int]  # sent date (RFC 5256 §2.2), sequence (UID) order


class _Box:
    """A step-1 container: a message, or a dummy (``rec`` None) made for a referenced id.
    ``children`` is an ordered set; step 6 sorts copies, never this."""

    __slots__ = ("children", "key", "parent", "rec")

    def __init__(self, rec: SortRecord | None) -> None:
        self.rec = rec
        self.key: Key | None = None if rec is None else (rec.sent, rec.uid)
        self.parent: _Box | None = None
        self.children: dict[_Box, None] = {}


_KEY: Final = attrgetter("key")


def _node_key(node: Node) -> Key:
    """A sibling's sort key: every node below the top level is a message (step 3)."""
    rec = node.record
    assert rec is not None
    return rec.sent, rec.uid


def _top_key(node: Node) -> Key:
    """A thread's sort key: its root's, or a dummy's first (sorted) child's (steps 4, 6)."""
    return _node_key(node if node.record is not None else next(iter(node.children)))


def _sorted_children(node: Node) -> None:
    if len(node.children) > 1:
        node.children = dict.fromkeys(sorted(node.children, key=_node_key))


Entry = tuple[Key, Node]  # a thread and its step-6 sort key (unique: a message's)


class ReferencesState:
    """THREAD=REFERENCES of a growing set of messages (see the module)."""

    def __init__(self) -> None:
        self.max_uid = 0
        self._by_id: dict[str, _Box] = {}
        self._boxes: list[_Box] = []
        #: every root container -> (its thread after steps 3 and 6, that thread's base
        #: subject), None for a dummy left without children
        self._roots: dict[_Box, tuple[Entry, str] | None] = {}
        #: roots whose trees changed; threads of former roots still to be taken out
        self._dirty: set[_Box] = set()
        self._stale: list[tuple[Entry, str]] = []
        #: base subject -> its roots' threads in step-4 order, and the thread they make
        self._groups: dict[str, list[Entry]] = {}
        self._gathered: dict[str, Entry] = {}
        #: every thread of the answer, in order (step 6)
        self._sorted: list[Entry] = []
        self._tree: list[Node] | None = None

    def add(self, records: Iterable[SortRecord]) -> None:
        """Step 1 for new messages, in UID order, above ``max_uid``; their References read."""
        by_id = self._by_id
        boxes = self._boxes
        touched: list[_Box] = []
        for rec in records:
            self.max_uid = rec.uid
            msg_id = rec.keys.message_id
            existing = by_id.get(msg_id) if msg_id is not None else None
            if existing is not None and existing.rec is None:
                node = existing  # the dummy made for this id becomes this message
                node.rec = rec
                node.key = (rec.sent, rec.uid)
            else:  # a new id, none at all, or a duplicate: the latter two get a unique one
                node = _Box(rec)
                boxes.append(node)
                if msg_id is not None and existing is None:
                    by_id[msg_id] = node
            touched.append(node)
            # (A) each reference the parent of the next, unless it has one or it makes a loop
            prev: _Box | None = None
            for ref in rec.keys.references or ():
                ref_node = by_id.get(ref)
                if ref_node is None:  # no message (yet) with this id: a dummy for it
                    ref_node = by_id[ref] = _Box(None)
                    boxes.append(ref_node)
                touched.append(ref_node)
                if prev is not None and ref_node.parent is None:
                    n: _Box | None = prev
                    while n is not None and n is not ref_node:
                        n = n.parent
                    if n is None:  # prev is not ref_node nor below it: no loop
                        ref_node.parent = prev
                        prev.children[ref_node] = None
                prev = ref_node
            # (B) the last reference (or none) is the parent; an earlier link gives way
            old = node.parent
            if old is not None:
                del old.children[node]
                node.parent = None
                touched.append(old)
            if prev is not None:
                n = prev
                while n is not None and n is not node:
                    n = n.parent
                if n is None:
                    node.parent = prev
                    prev.children[node] = None
        if not touched:
            return
        self._tree = None
        roots = self._roots
        if len(touched) * 4 > len(boxes):  # much changed: every thread is built again
            self._roots = dict.fromkeys(b for b in boxes if b.parent is None)
            self._dirty = set(self._roots)
            self._stale.clear()
            self._groups.clear()
            self._gathered.clear()
            self._sorted.clear()
            return
        for box in touched:
            if box.parent is not None:
                if box in roots:  # a root no more
                    entry = roots.pop(box)
                    if entry is not None:
                        self._stale.append(entry)
                while box.parent is not None:
                    box = box.parent
            self._dirty.add(box)

    def tree(self) -> list[Node]:
        """The top-level threads in order (steps 2 to 6): the same list until a change."""
        if self._tree is not None:
            return self._tree
        roots = self._roots
        changed: set[str] = set()
        for entry in self._stale:
            self._take(entry, changed)
        self._stale.clear()
        new: dict[str, list[Entry]] = {}  # subject -> threads to place among its others
        for box in self._dirty:
            if box.parent is not None:  # a later message gave it a parent
                continue
            old = roots.get(box)
            if old is not None:
                self._take(old, changed)
            made = roots[box] = _pruned(box)  # (2), (3), and (6) below the top level
            if made is not None:
                new.setdefault(made[1], []).append(made[0])
        self._dirty.clear()
        placed = new.pop("", [])  # an empty subject is never gathered
        for subject, entries in new.items():  # (4) in order among its subject's threads
            changed.add(subject)
            _place(self._groups.setdefault(subject, []), entries)
        for subject in changed:  # (5) a subject's threads gathered
            gone = self._gathered.pop(subject, None)
            if gone is not None:
                _drop(self._sorted, gone)
            members = self._groups.get(subject)
            if not members:
                self._groups.pop(subject, None)
                continue
            made_top = members[0] if len(members) == 1 else _gathered(members)
            self._gathered[subject] = made_top
            placed.append(made_top)
        _place(self._sorted, placed)  # (6)
        self._tree = [e[1] for e in self._sorted]
        return self._tree

    def _take(self, old: tuple[Entry, str], changed: set[str]) -> None:
        """A root's former thread out of its subject's threads or the answer."""
        entry, subject = old
        if subject:
            _drop(self._groups[subject], entry)
            changed.add(subject)
        else:
            _drop(self._sorted, entry)


def _place(entries: list[Entry], new: list[Entry]) -> None:
    """``new`` into the sorted ``entries``: by bisection when few, else by a sort."""
    if len(new) * 8 < len(entries):
        for entry in new:
            insort(entries, entry)
    else:
        entries.extend(new)
        entries.sort()


def _drop(entries: list[Entry], entry: Entry) -> None:
    i = bisect_left(entries, entry[:1])
    assert entries[i][1] is entry[1]
    del entries[i]


def _messages(box: _Box) -> list[_Box]:
    """``box``'s children with every dummy replaced by its children, recursively (step 3),
    sorted (step 6)."""
    out: list[_Box] = []
    pending = list(box.children)
    while pending:
        c = pending.pop()
        if c.rec is not None:
            out.append(c)
        else:
            pending.extend(c.children)
    if len(out) > 1:
        out.sort(key=_KEY)
    return out


def _pruned(root: _Box) -> tuple[Entry, str] | None:
    """Steps 3 and 6 for one root's tree: dummies give way to their children (a top-level
    dummy stays when it has several), every set of siblings sorted. With the thread's sort
    key and base subject (a dummy's are its first child's); None: nothing left."""
    if root.rec is None:
        kids = _messages(root)
        if not kids:
            return None
        if len(kids) > 1:
            first = kids[0]
            assert first.key is not None and first.rec is not None
            top = Node(None, None, {_copy(k): None for k in kids})
            return (first.key, top), first.rec.keys.subject
        root = kids[0]  # an only child is promoted to the root
    assert root.key is not None and root.rec is not None
    return (root.key, _copy(root)), root.rec.keys.subject


def _copy(root: _Box) -> Node:
    """``root`` (a message) and its subtree as `Node` values, dummies below it spliced out
    and siblings sorted (steps 3 and 6). Iterative: a thread can be as deep as the mailbox."""
    top = Node(root.rec)
    if not root.children:
        return top
    stack = [(root, top)]
    while stack:
        box, node = stack.pop()
        children: dict[Node, None] = {}
        for c in _messages(box):
            child = Node(c.rec)
            children[child] = None
            if c.children:
                stack.append((c, child))
        node.children = children
    return top


def _subject(node: Node) -> str:
    first = node if node.record is not None else next(iter(node.children))
    assert first.record is not None
    return first.record.keys.subject


def _is_reply(node: Node) -> bool:
    return node.record is not None and node.record.keys.reply


def _gathered(members: list[Entry]) -> Entry:
    node = _gather([m[1] for m in members])
    return _top_key(node), node


def _gather(members: Sequence[Node]) -> Node:
    """Step 5 for the threads of one base subject (in step-4 order), as `_merge_subjects`
    of threads.py does it, on copies: the kept threads are never changed. One thread comes
    out."""
    held = members[0]  # (B): the first, or a dummy, or a non-reply over a reply
    for node in members[1:]:
        if held.record is not None and (
            node.record is None or (_is_reply(held) and not _is_reply(node))
        ):
            held = node
    copies: dict[Node, Node] = {}  # kept thread -> its changed copy; a new dummy -> itself

    def own(node: Node) -> Node:
        copy = copies.get(node)
        if copy is None:
            copy = copies[node] = Node(node.record, None, dict(node.children))
        return copy

    gone: set[Node] = set()
    for node in members:  # (C)
        if node in gone or node is held:
            continue
        gone.add(node)
        if node.record is None and held.record is None:
            own(held).children.update(node.children)
        elif held.record is None or (_is_reply(node) and not _is_reply(held)):
            own(held).children[node] = None
        else:
            dummy = Node(None, None, {copies.get(held, held): None, node: None})
            copies[dummy] = dummy
            gone.add(held)
            held = dummy
    for copy in copies.values():
        _sorted_children(copy)
    return copies.get(held, held)


class SubjectState:
    """THREAD=ORDEREDSUBJECT of a growing set of messages: one thread per base subject, its
    first message (by sent date, then sequence) the root, every other one its child;
    threads by their roots' sent dates. Only the threads of new messages' subjects are
    built again."""

    def __init__(self) -> None:
        self.max_uid = 0
        self._groups: dict[str, list[tuple[int, int, SortRecord]]] = {}
        self._threads: dict[str, Entry] = {}
        self._sorted: list[Entry] = []
        self._dirty: set[str] = set()
        self._tree: list[Node] | None = None

    def add(self, records: Iterable[SortRecord]) -> None:
        groups = self._groups
        for rec in records:
            self.max_uid = rec.uid
            subject = rec.keys.subject
            group = groups.get(subject)
            entry = (rec.sent, rec.uid, rec)
            if group is None:
                groups[subject] = [entry]
            elif group[-1] < entry:
                group.append(entry)
            else:
                insort(group, entry)
            self._dirty.add(subject)
            self._tree = None

    def tree(self) -> list[Node]:
        if self._tree is None:
            threads = self._threads
            placed: list[Entry] = []
            for subject in self._dirty:
                old = threads.get(subject)
                if old is not None:
                    _drop(self._sorted, old)
                first, *rest = self._groups[subject]
                root = Node(first[2], None, {Node(e[2]): None for e in rest})
                made = threads[subject] = ((first[0], first[1]), root)
                placed.append(made)
            self._dirty.clear()
            _place(self._sorted, placed)
            self._tree = [e[1] for e in self._sorted]
        return self._tree
