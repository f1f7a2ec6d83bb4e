"""Sequence sets with repeated or overlapping ranges cost what they cover, once
(`SequenceSet.merged`): ``1:*`` repeated 10,000 times named a large mailbox 10,000 times."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol.values import SequenceSet
from imapd.selected import SelectedView

bound = st.one_of(st.none(), st.integers(1, 60))
sets = st.lists(st.tuples(bound, bound), min_size=1, max_size=12).map(
    lambda r: SequenceSet(tuple(r))
)


@settings(max_examples=200, deadline=None)
@given(sets, st.integers(0, 50))
def test_values_are_the_numbers_covered(s: SequenceSet, largest: int) -> None:
    expected = sorted(
        {n for lo, hi in s.resolve(largest) for n in range(max(lo, 1), hi + 1) if n <= largest}
    )
    assert s.values(largest) == expected
    merged = s.merged(largest)
    assert all(a[1] + 1 < b[0] for a, b in pairwise(merged))


@settings(max_examples=150, deadline=None)
@given(sets, st.lists(st.integers(1, 70), unique=True).map(sorted))
def test_uid_resolution_is_each_uid_once(s: SequenceSet, uids: list[int]) -> None:
    view = SelectedView(mailbox_id=1, uids=uids, readonly=False)
    largest = uids[-1] if uids else 0
    expected = [u for u in uids if any(lo <= u <= hi for lo, hi in s.resolve(largest))]
    assert view.resolve(s, uid=True) == expected


def test_many_repeats_of_everything() -> None:
    s = SequenceSet(((1, None),) * 10_000)
    assert s.merged(1_000_000) == [(1, 1_000_000)]
    view = SelectedView(mailbox_id=1, uids=list(range(1, 200_001)), readonly=False)
    assert len(view.resolve(s, uid=True)) == 200_000
    assert len(view.resolve(s, uid=False)) == 200_000
