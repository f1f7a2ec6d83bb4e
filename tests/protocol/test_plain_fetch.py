"""The FETCH hot path renders the same bytes as the generic serializer, att by att."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from imapd.commands.message import _fetch_response, _plain_fetch_lines
from imapd.protocol.serializer import serialize
from imapd.protocol.values import FetchAtt
from imapd.selected import SelectedView
from store.api import MessageRecord

TZ = dt.timezone(dt.timedelta(hours=-5, minutes=-30))
RECORDS = [
    MessageRecord(3, 11, (), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 120),
    MessageRecord(7, 12, ("\\Seen", "$Work"), dt.datetime(2025, 12, 31, 23, 0, tzinfo=TZ), 9),
    MessageRecord(9, 15, ("\\Deleted",), dt.datetime(2026, 7, 9, 1, 2, 3, tzinfo=dt.UTC), 1),
]
NAMES = ["UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"]


@pytest.mark.parametrize(
    "names",
    [c for n in range(1, 4) for c in itertools.permutations(NAMES, n)],
    ids=lambda names: "+".join(names),
)
def test_plain_path_matches_generic_serializer(names: tuple[str, ...]) -> None:
    atts = tuple(FetchAtt(n) for n in names)
    view = SelectedView(1, [1, 3, 7, 9], readonly=False, recent={7})
    rows = [
        (r.uid, r.modseq, " ".join(r.flags), r.size, r.internaldate.isoformat()) for r in RECORDS
    ]
    fast = _plain_fetch_lines(view, rows, atts)
    slow = b"".join(
        serialize(_fetch_response(None, view, view.seq_of(r.uid) or 0, r, atts, {}))  # type: ignore[arg-type]
        for r in RECORDS
    )
    assert fast == slow
