"""Property tests of THREAD (RFC 5256 §3) and SORT on generated mailboxes: arbitrary
Message-IDs, References (loops, self references, duplicates, missing parents) and subjects.
Every searched message appears exactly once in the tree, parents come before children in
the rendered THREAD response (thread-data preorder), the response parses back to the same
tree, and SORT returns a permutation ordered by its key with sequence-number ties."""

from __future__ import annotations

import re
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol.sortthread import thread_data
from store.sortthread.collation import casemap
from store.sortthread.records import ContentKeys, SortRecord
from store.sortthread.sorting import KEYS, sort_records
from store.sortthread.subject import base_subject
from store.sortthread.threads import Node, ordered_subject, references

IDS = [f"<{i}@x>" for i in range(12)]
SUBJECTS = ["a", "Re: a", "b", "Fwd: b", "[l] a", "", "Re:", "[Fwd: a]", "B (fwd)"]


@st.composite
def mailboxes(draw: st.DrawFn) -> list[SortRecord]:
    n = draw(st.integers(0, 25))
    out = []
    for uid in range(1, n + 1):
        mid = draw(st.none() | st.sampled_from(IDS))
        refs = tuple(draw(st.lists(st.sampled_from(IDS), max_size=5)))
        base, reply = base_subject(draw(st.sampled_from(SUBJECTS)))
        sent = draw(st.integers(0, 5))
        keys = ContentKeys(
            sent,
            casemap(base),
            reply,
            draw(st.sampled_from(["", "A", "B"])),
            "",
            "",
            "",
            "",
            mid,
            refs,
        )
        out.append(SortRecord(uid, draw(st.integers(0, 5)), draw(st.integers(0, 5)), keys))
    return out


def _flatten(roots: list[Node]) -> list[int]:
    """Preorder UIDs; asserts that every parent link matches the children sets."""
    out: list[int] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        for child in node.children:
            assert child.parent is node
        if node.uid is not None:
            out.append(node.uid)
        else:
            assert len(node.children) >= 2, "a dummy left with fewer than two children"
        stack.extend(reversed(node.children))
    return out


def _parse(text: str) -> list[int]:
    """The numbers of a thread-data response in order, checking its grammar roughly."""
    assert re.fullmatch(r"(\((\d+|\(|\)| )*\))*", text)
    assert text.count("(") == text.count(")")
    return [int(n) for n in re.findall(r"\d+", text)]


@settings(max_examples=100, deadline=None)
@given(mailboxes())
def test_references_every_message_once(records: list[SortRecord]) -> None:
    roots = references(records)
    order = _flatten(roots)
    assert sorted(order) == [r.uid for r in records]  # each exactly once
    for root in roots:
        assert root.parent is None
    # parents before children: the rendered response lists a parent before its subtree
    text = thread_data(roots, int).decode()
    assert _parse(text) == order
    position = {uid: i for i, uid in enumerate(order)}
    stack = list(roots)
    while stack:
        node = stack.pop()
        for child in node.children:
            if node.uid is not None and child.uid is not None:
                assert position[node.uid] < position[child.uid]
            stack.append(child)


@settings(max_examples=50, deadline=None)
@given(mailboxes())
def test_ordered_subject_shape(records: list[SortRecord]) -> None:
    roots = ordered_subject(records)
    assert sorted(_flatten(roots)) == [r.uid for r in records]
    for root in roots:  # no grandchildren; one subject per thread
        assert root.record is not None
        for child in root.children:
            assert not child.children
            assert child.record is not None
            assert child.record.keys.subject == root.record.keys.subject
    subjects = [r.record.keys.subject for r in roots if r.record is not None]
    assert len(subjects) == len(set(subjects))


@settings(max_examples=50, deadline=None)
@given(
    mailboxes(),
    st.lists(st.tuples(st.sampled_from(sorted(KEYS)), st.booleans()), min_size=1, max_size=3),
)
def test_sort_is_ordered_permutation(
    records: list[SortRecord], criteria: list[tuple[str, bool]]
) -> None:
    out = sort_records(records, criteria)
    assert sorted(r.uid for r in out) == [r.uid for r in records]
    for a, b in pairwise(out):
        for key, reverse in criteria:
            ka, kb = KEYS[key](a), KEYS[key](b)
            if ka != kb:
                assert (ka > kb) if reverse else (ka < kb)
                break
        else:
            assert a.uid < b.uid  # the implicit sequence-number criterion
