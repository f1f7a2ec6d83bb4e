"""The cache of what never changes of a message (`imapd.fetch_cache`, issue 17): bounded in
octets, all or nothing per batch, its rows rendered as the store's rows are, and
`fetch_rows.pieces` cutting the pre-rendered bytes as `fetch_wire.piece` does."""

from __future__ import annotations

import itertools

import pytest

from imapd import fetch_cache, fetch_rows, fetch_wire
from imapd.fetch import prerender
from imapd.protocol.values import FetchAtt, Section
from imapd.selected import SelectedView
from store.mime import parse_message
from tests.protocol.test_fetch_rows import MESSAGES_ODD, _records


@pytest.mark.parametrize("raw", MESSAGES_ODD, ids=range(len(MESSAGES_ODD)))
def test_pieces_cut_as_the_layout_says(raw: bytes) -> None:
    wire = prerender(parse_message(raw))
    pieces = fetch_rows.pieces(wire)
    assert pieces is not None and len(pieces) == 2 * len(fetch_wire.ITEMS)
    for name, i in fetch_wire.ITEMS.items():
        for utf8 in (False, True):
            got = pieces[i + 3 * utf8]
            assert got == name.encode() + b" " + fetch_wire.piece(wire, name, utf8)
    assert fetch_rows.pieces(None) is None
    assert fetch_rows.pieces(b"W0 1 2 3\n...") is None


def test_cached_rows_render_as_store_rows() -> None:
    """A batch from the cache (immutable columns) and a read of FLAGS and MODSEQ renders
    exactly as the store's rows of all the columns do, for every mix of attributes."""
    recs = [_records(MESSAGES_ODD[i], uid) for i, uid in ((0, 3), (3, 7), (5, 9))]
    cache = fetch_cache.ContentCache()
    # What the store returns: the wire bytes whole (the cache cuts them into pieces).
    stored = [
        (r[1].uid, r[2]["size"], r[2]["internaldate"], r[1].wire, r[2]["header"]) for r in recs
    ]
    assert cache.lookup(1, 100, [3, 7, 9]) is None
    entries = cache.fill(1, 100, stored)
    assert cache.lookup(1, 100, [3, 7, 9]) == entries
    copied = [len(r[2]["header"]) + sum(map(len, r[2]["wire"][:3])) for r in recs]
    assert fetch_cache.cost(entries) == sum(copied)  # what RENDER_IN_THREAD weighs
    assert cache.lookup(1, 101, [3, 7, 9]) is None  # another UIDVALIDITY
    assert cache.lookup(1, 100, [3, 8]) is None  # all or nothing
    atts = [
        FetchAtt("UID"),
        FetchAtt("FLAGS"),
        FetchAtt("MODSEQ"),
        FetchAtt("ENVELOPE"),
        FetchAtt("BODYSTRUCTURE"),
        FetchAtt("BODY"),
        FetchAtt("RFC822.SIZE"),
        FetchAtt("INTERNALDATE"),
        FetchAtt("BODY", Section((), "HEADER.FIELDS", ("SUBJECT", "TO")), peek=True),
    ]
    for mix in [*itertools.permutations(atts, 2), *itertools.combinations(atts, 4)]:
        rplan = fetch_rows.plan(mix)
        assert rplan is not None
        want_rows = [(r[1].uid, *(r[2][c] for c in rplan.columns)) for r in recs]
        mutable = [c for c in rplan.columns if c in fetch_cache.MUTABLE]
        read = [(r[1].uid, *(r[2][c] for c in mutable)) for r in recs]
        got_rows, order = fetch_cache.rows(entries, read, rplan.columns)
        assert sorted(order) == sorted(rplan.columns), mix
        for got, want_row in zip(got_rows, want_rows, strict=True):
            assert got[0] == want_row[0]
            assert dict(zip(order, got[1:], strict=True)) == dict(
                zip(rplan.columns, want_row[1:], strict=True)
            )
        for utf8 in (False, True):
            view = SelectedView(1, [3, 7, 9], readonly=False)
            want = fetch_rows.render(view, want_rows, rplan, utf8)
            assert want is not None
            assert fetch_rows.render(view, got_rows, rplan, utf8, order) == want


def test_cache_is_bounded_in_octets_oldest_out_first() -> None:
    cache = fetch_cache.ContentCache(budget=10 * (fetch_cache.ENTRY_OVERHEAD + 100))
    header = b"x" * 60
    for uid in range(1, 101):
        cache.fill(5, 1, [(uid, 10, "2026-01-01T00:00:00+00:00", None, header)])
        assert cache.used <= cache.budget
    assert len(cache) == 10
    assert cache.lookup(5, 1, list(range(91, 101))) is not None
    assert cache.lookup(5, 1, [90]) is None
    # An entry over the whole budget is not kept (and pushes nothing out).
    cache.fill(5, 1, [(200, 10, "x", None, b"y" * cache.budget)])
    assert cache.lookup(5, 1, [200]) is None and len(cache) == 10
    # The same key again replaces its entry, counted once.
    used = cache.used
    cache.fill(5, 1, [(100, 10, "2026-01-01T00:00:00+00:00", None, header)])
    assert cache.used == used and len(cache) == 10


def test_one_cache_per_store_object() -> None:
    class Store:
        pass

    a, b = Store(), Store()
    assert fetch_cache.for_store(a) is fetch_cache.for_store(a)
    assert fetch_cache.for_store(a) is not fetch_cache.for_store(b)
