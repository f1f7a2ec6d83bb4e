"""SelectedView: the sequence-number rules of RFC 3501 §7.4.1, named case by case, and a
hypothesis model check against a naive list of what the client knows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.protocol.responses import Serialized, Untagged
from imapd.protocol.values import SequenceSet
from imapd.selected import SelectedView
from store.changes import (
    Counts,
    FlagChange,
    FlagsChanged,
    MailboxRef,
    MessageFacts,
    MessagesAdded,
    MessagesExpunged,
    Origin,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BOX = MailboxRef(1, "alice", "INBOX", 7)
COUNTS = Counts(0, 0, 0, 0, 0)
OTHER = Origin(session="other")


def facts(uid: int) -> MessageFacts:
    return MessageFacts(uid, 1, (), 10, NOW)


def added(*uids: int) -> MessagesAdded:
    return MessagesAdded(1, NOW, OTHER, BOX, COUNTS, tuple(facts(u) for u in uids))


def expunged(*uids: int) -> MessagesExpunged:
    return MessagesExpunged(1, NOW, OTHER, BOX, COUNTS, tuple(facts(u) for u in uids), 2)


def flagged(uid: int, *flags: str) -> FlagsChanged:
    return FlagsChanged(1, NOW, OTHER, BOX, COUNTS, (FlagChange(uid, 3, flags, flags, ()),))


def lines(responses: list[Any]) -> list[tuple[Any, ...]]:
    """Untagged responses as their items; pre-rendered count lines (``* 3 EXISTS``) too."""
    out: list[tuple[Any, ...]] = []
    for r in responses:
        if isinstance(r, Untagged):
            out.append(r.items)
        elif isinstance(r, Serialized):
            for line in r.data.decode().splitlines():
                star, number, word = line.split(" ")
                assert star == "*"
                out.append((int(number), word))
    return out


def test_expunge_is_held_until_allowed_and_number_stays_valid() -> None:
    view = SelectedView(1, [10, 20, 30], readonly=False)
    view.apply(expunged(20), own=False)
    assert view.flush(allow_expunge=False) == []
    assert view.seq_of(20) == 2 and view.exists == 3
    assert view.resolve(SequenceSet(((2, 2),)), uid=False) == [20]
    assert lines(view.flush(allow_expunge=True)) == [(2, "EXPUNGE")]
    assert view.uids == [10, 30]


def test_exists_during_fetch_counts_unreported_expunges() -> None:
    view = SelectedView(1, [10, 20], readonly=False)
    view.apply(expunged(10), own=False)
    view.apply(added(40), own=False)
    out = lines(view.flush(allow_expunge=False))
    assert out[0] == (3, "EXISTS")
    assert lines(view.flush(allow_expunge=True)) == [(1, "EXPUNGE")]
    assert view.uids == [20, 40]


def test_expunges_go_out_highest_first() -> None:
    view = SelectedView(1, [1, 2, 3, 4], readonly=False)
    view.apply(expunged(2, 3), own=False)
    assert lines(view.flush(allow_expunge=True)) == [(3, "EXPUNGE"), (2, "EXPUNGE")]


def test_qresync_sends_vanished() -> None:
    view = SelectedView(1, [1, 2, 3, 4], readonly=False, qresync=True)
    view.apply(expunged(2, 3), own=False)
    assert lines(view.flush(allow_expunge=True)) == [("VANISHED", "2:3")]


def test_message_added_and_removed_before_being_told_is_never_told() -> None:
    view = SelectedView(1, [1], readonly=False)
    view.apply(added(2), own=False)
    view.apply(expunged(2), own=False)
    assert view.flush(allow_expunge=True) == []


def test_own_flag_changes_are_not_echoed_but_others_are() -> None:
    view = SelectedView(1, [1, 2], readonly=False)
    view.apply(flagged(1, "\\Seen"), own=True)
    assert view.flush(allow_expunge=True) == []
    view.apply(flagged(2, "\\Seen"), own=False)
    out = lines(view.flush(allow_expunge=True))
    assert out == [(2, "FETCH", ("UID", 2, "FLAGS", ("\\Seen",)))]


def test_new_keyword_announces_flags_first() -> None:
    view = SelectedView(1, [1], readonly=False)
    view.apply(flagged(1, "$Work"), own=False)
    out = lines(view.flush(allow_expunge=True))
    assert out[0][0] == "FLAGS" and "$Work" in out[0][1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "expunge", "flush", "hold"]), st.integers(0, 5)),
        max_size=40,
    )
)
def test_view_agrees_with_naive_model(ops: list[tuple[str, int]]) -> None:
    """The client's list (what it was told) always equals the view's numbering."""
    view = SelectedView(1, [], readonly=False)
    client: list[int] = []
    store: list[int] = []
    next_uid = 1
    for op, n in ops:
        if op == "add":
            new = list(range(next_uid, next_uid + n + 1))
            next_uid += n + 1
            store += new
            view.apply(added(*new), own=False)
        elif op == "expunge" and store:
            gone = store[n % len(store)]
            store.remove(gone)
            view.apply(expunged(gone), own=False)
        else:
            for items in lines(view.flush(allow_expunge=op == "flush")):
                if items[1] == "EXPUNGE":
                    seq = items[0]
                    assert isinstance(seq, int)
                    del client[seq - 1]
                elif items[1] == "EXISTS":
                    count = items[0]
                    assert isinstance(count, int)
                    known = set(client)
                    client += [u for u in view.uids if u not in known]
                    assert len(client) == count
        assert client == view.uids[: len(client)]
    view.flush(allow_expunge=True)
    assert view.uids == store


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 60), unique=True, max_size=30).map(sorted),
    st.one_of(st.none(), st.integers(1, 70)),
    st.one_of(st.none(), st.integers(1, 70)),
    st.booleans(),
)
def test_single_range_resolve_matches_the_general_path(
    uids: list[int], low: int | None, high: int | None, by_uid: bool
) -> None:
    """The one-slice fast path of resolve() answers as the general path (a 2-range set)."""
    view = SelectedView(1, uids, readonly=False)
    one = SequenceSet(((low, high),))
    two = SequenceSet(((low, high), (low, high)))
    try:
        fast = view.resolve(one, uid=by_uid)
    except Exception as exc:  # noqa: BLE001 - both paths must refuse alike
        with pytest.raises(type(exc)):
            view.resolve(two, uid=by_uid)
        return
    assert fast == view.resolve(two, uid=by_uid)


def test_octets_bound_grows_with_every_message_added_and_stays_after_expunges() -> None:
    # FETCH skips reading sizes when the bound is under its batch budget
    # (imapd/commands/fetch.py `_by_octets`): the bound must cover every message a client
    # can name, also those added after SELECT.
    view = SelectedView(1, [1, 2], readonly=False, octets_bound=500)
    view.apply(added(3, 4), own=False)  # 10 octets each
    assert view.octets_bound == 520
    view.apply(expunged(1), own=False)
    assert view.octets_bound == 520
    unknown = SelectedView(1, [1], readonly=False)
    unknown.apply(added(2), own=False)
    assert unknown.octets_bound is None
