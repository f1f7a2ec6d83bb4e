"""The kept threads (store/sortthread/threadstate.py) equal a full run of the algorithms as
RFC 5256 §3 writes them (store/sortthread/threads.py) after every batch of appended
messages, for generated mailboxes: duplicate and missing Message-IDs, References to
messages that come later, loops and self references, subjects that gather threads and
later messages that change which thread holds a subject. Also through `MailboxSortState`
with expunges between appends, the RFC's worked examples fed one message at a time, and
trees already handed out staying as they were."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol.sortthread import thread_data, thread_lists
from store.sortthread.incremental import MailboxSortState
from store.sortthread.records import SortRecord
from store.sortthread.threads import Node, ordered_subject, references
from store.sortthread.threadstate import ReferencesState, SubjectState
from tests.properties.test_threading import mailboxes
from tests.store.test_sortthread import rec


def _shape(nodes: Any) -> list[Any]:
    """A thread tree as nested (UID, children) pairs, None for a dummy; iterative."""
    out: list[Any] = []
    stack: list[tuple[Node, list[Any]]] = [(n, out) for n in reversed(list(nodes))]
    while stack:
        node, into = stack.pop()
        kids: list[Any] = []
        into.append((node.uid, kids))
        stack.extend((c, kids) for c in reversed(list(node.children)))
    return out


def _batches(records: list[SortRecord], cuts: list[int]) -> list[list[SortRecord]]:
    points = sorted({c % (len(records) + 1) for c in cuts} | {0, len(records)})
    return [records[a:b] for a, b in pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(mailboxes(), st.lists(st.integers(0, 30), max_size=8))
def test_kept_references_equal_full_run(records: list[SortRecord], cuts: list[int]) -> None:
    state = ReferencesState()
    done: list[SortRecord] = []
    handed: list[tuple[list[Node], list[Any]]] = []
    known: dict[Any, str] = {}
    for batch in _batches(records, cuts):
        state.add(batch)
        done += batch
        got = state.tree()
        full = references(done)
        assert _shape(got) == _shape(full)
        assert state.tree() is got  # no change: the same tree
        handed.append((got, _shape(got)))
        # the response with the texts of the threads rendered last time reused
        lists = thread_lists(got, int, known)
        assert "".join(lists).encode() == thread_data(full, int)
        known = dict(zip(got, lists, strict=True))
    for tree, shape in handed:  # later messages never changed a tree handed out
        assert _shape(tree) == shape


@settings(max_examples=100, deadline=None)
@given(mailboxes(), st.lists(st.integers(0, 30), max_size=8))
def test_kept_ordered_subject_equals_full_run(records: list[SortRecord], cuts: list[int]) -> None:
    state = SubjectState()
    done: list[SortRecord] = []
    handed: list[tuple[list[Node], list[Any]]] = []
    for batch in _batches(records, cuts):
        state.add(batch)
        done += batch
        got = state.tree()
        assert _shape(got) == _shape(ordered_subject(done))
        handed.append((got, _shape(got)))
    for tree, shape in handed:
        assert _shape(tree) == shape


@settings(max_examples=100, deadline=None)
@given(
    mailboxes(),
    st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 40), max_size=4)), max_size=8),
)
def test_mailbox_state_threads_follow_changes(
    records: list[SortRecord], ops: list[tuple[bool, list[int]]]
) -> None:
    """Appends continue the kept threads, expunges start them afresh; either way THREAD
    of all the messages (and of every other one) equals a full run."""
    state = MailboxSortState(())
    pending = list(records)
    for add, values in ops:
        if add:
            take = len(values) + 1
            state.add(pending[:take])
            pending = pending[take:]
        elif state.records:
            present = list(state.records)
            state.remove({present[v % len(present)] for v in values})
        held = state.all_records()
        for algorithm, run in (("REFERENCES", references), ("ORDEREDSUBJECT", ordered_subject)):
            expected = _shape(run(held))
            assert _shape(state.thread(algorithm, None)) == expected
            assert _shape(state.thread(algorithm, list(state.records))) == expected
            some = held[::2]
            assert _shape(state.thread(algorithm, [r.uid for r in some])) == _shape(run(some))


def test_rfc_example_one_message_at_a_time() -> None:
    """RFC 5256 §4: "(2)(3 6 (4 23)(44 7 96))", the messages arriving one by one: 4 and 7
    come before the messages they reply to, so later messages fill their dummies."""
    records = [
        rec(2, "<2@x>", subject="two", sent=1),
        rec(3, "<3@x>", subject="three", sent=2),
        rec(4, "<4@x>", ("<3@x>", "<6@x>"), "Re: three", sent=4),
        rec(6, "<6@x>", ("<3@x>",), "Re: three", sent=3),
        rec(7, "<7@x>", ("<3@x>", "<6@x>", "<44@x>"), "Re: three", sent=7),
        rec(23, "<23@x>", ("<3@x>", "<6@x>", "<4@x>"), "Re: three", sent=5),
        rec(44, "<44@x>", ("<3@x>", "<6@x>"), "Re: three", sent=6),
        rec(96, "<96@x>", ("<3@x>", "<6@x>", "<44@x>", "<7@x>"), "Re: three", sent=8),
    ]
    state = ReferencesState()
    for r in records:
        state.add([r])
        state.tree()
    assert thread_data(state.tree(), int) == b"(2)(3 6 (4 23)(44 7 96))"
    dummy = ReferencesState()
    dummy.add([rec(3, "<3@x>", ("<1@x>",), "a")])
    assert thread_data(dummy.tree(), int) == b"(3)"  # a lone child is promoted
    dummy.add([rec(5, "<5@x>", ("<1@x>",), "b")])
    assert thread_data(dummy.tree(), int) == b"((3)(5))"  # RFC 5256 §4


def test_later_message_regathers_subject() -> None:
    """Step 5 after appends: a non-reply arriving later takes the subject over (the reply
    thread goes under it); an earlier-dated non-reply then takes the reply, and a dummy
    holds the two non-replies; a reply to it changes its thread, gathered again."""
    state = ReferencesState()
    state.add([rec(1, "<a@x>", (), "Re: plan", 1)])
    assert thread_data(state.tree(), int) == b"(1)"
    state.add([rec(2, "<b@x>", (), "plan", 2)])
    assert thread_data(state.tree(), int) == b"(2 1)"
    state.add([rec(3, "<c@x>", (), "Plan", 0)])
    assert thread_data(state.tree(), int) == b"((3 1)(2))"
    state.add([rec(4, "<d@x>", ("<c@x>",), "Re: plan", 4)])
    assert thread_data(state.tree(), int) == b"((3 (1)(4))(2))"
