"""SelectedView.numbered: SEARCH results to sequence numbers, contiguous fast path or not."""

from __future__ import annotations

import pytest

from imapd.selected import SelectedView


@pytest.mark.parametrize(
    "own",
    [
        [5, 6, 7, 8, 9],  # one contiguous run: offsets
        [5, 7, 8, 12, 13],  # gaps: looked up one by one
        [],
    ],
)
def test_numbered_matches_seq_of(own: list[int]) -> None:
    view = SelectedView(1, own, readonly=False)
    found = [1, 5, 7, 8, 9, 11, 13, 20]
    known = [u for u in found if view.seq_of(u) is not None]
    assert view.numbered(found) == (known, [view.seq_of(u) for u in known])
    assert view.numbered([]) == ([], [])
