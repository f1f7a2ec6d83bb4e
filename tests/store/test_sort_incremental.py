"""The kept SORT/THREAD state (store/sortstate.py, store/sortthread/incremental.py) equals a
full recomputation after any sequence of APPENDs, EXPUNGEs and flag changes, on both
backends: each example works on a fresh mailbox of one store, whose state is synced after
every step; the reference is the records read afresh (`sort_records`) and sorted or
threaded from scratch by the pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.api import Criterion, NewMessage
from store.sortthread.incremental import MailboxSortState, sort_key
from store.sortthread.records import ContentKeys, SortRecord
from store.sortthread.sorting import sort_records
from store.sortthread.threads import Node, ordered_subject, references
from tests.helpers.store import ORIGIN, Env

BOTH_BACKENDS = True

ALL = Criterion("ALL")
CRITERIA: list[tuple[tuple[str, bool], ...]] = [
    (("DATE", False),),
    (("SUBJECT", False), ("DATE", True)),
    (("FROM", True), ("ARRIVAL", False)),
    (("SIZE", True),),
]
SUBJECTS = ["Plans", "Re: Plans", "Fwd: Plans", "lunch", "[list] Re: lunch", ""]

# one message: subject, Date day, message-id (few: duplicates happen), reference ids, size pad
_MESSAGE = st.tuples(
    st.sampled_from(SUBJECTS),
    st.integers(1, 4),
    st.integers(0, 7),
    st.lists(st.integers(0, 7), max_size=3),
    st.integers(0, 3),
)
_STEP = st.one_of(
    st.tuples(st.just("append"), st.lists(_MESSAGE, min_size=1, max_size=4)),
    st.tuples(st.just("expunge"), st.lists(st.integers(0, 30), min_size=1, max_size=4)),
    st.tuples(st.just("flag"), st.lists(st.integers(0, 30), min_size=1, max_size=4)),
)


def _raw(subject: str, day: int, mid: int, refs: list[int], pad: int) -> bytes:
    head = (
        f"From: u{(mid * 7 + day) % 5}@x.org\r\nSubject: {subject}\r\n"
        f"Date: Mon, {day} Jan 2023 10:00:00 +0000\r\nMessage-ID: <m{mid}@x>\r\n"
    )
    if refs:
        head += "References: " + " ".join(f"<m{r}@x>" for r in refs) + "\r\n"
    return (head + "\r\n" + "body\r\n" * (pad + 1)).encode()


def _shape(nodes: Any) -> list[Any]:
    """A thread tree as nested lists of UIDs (None for a dummy), iteratively."""
    out: list[Any] = []
    stack: list[tuple[Node, list[Any]]] = [(n, out) for n in reversed(list(nodes))]
    while stack:
        node, into = stack.pop()
        kids: list[Any] = []
        into.append((node.uid, kids))
        stack.extend((c, kids) for c in reversed(list(node.children)))
    return out


ROW_CRITERIA: list[tuple[tuple[str, bool], ...]] = [(("ARRIVAL", False),), (("SIZE", True),)]


async def _check_rows(store: Any, box: int) -> None:
    """ARRIVAL and SIZE only: the state reads no content keys (none are held) and its
    orders equal a sort of rows read afresh."""
    fresh = await store.sort_records(box, ALL, contents=False)
    reads = store._sort_content_keys
    calls: list[int] = []

    async def counted(ids: list[int], refs: bool) -> Any:
        calls.append(len(ids))
        return await reads(ids, refs)

    store._sort_content_keys = counted
    try:
        for criteria in ROW_CRITERIA:
            expected = [r.uid for r in sort_records(fresh, criteria)]
            assert await store.sort_order(box, criteria) == expected
    finally:
        del store._sort_content_keys
    assert calls == []
    assert not store._sort_states[box].keyed
    _check_counts(store._sort_states[box])


def _check_counts(state: MailboxSortState) -> None:
    """The kept count of records without References (it spares a scan per THREAD)."""
    held = state.records.values()
    assert state.without_references == sum(r.keys.references is None for r in held)


async def _check(store: Any, box: int) -> None:
    fresh = await store.sort_records(box, ALL, references=True)
    uids = [r.uid for r in fresh]
    for criteria in ROW_CRITERIA:
        assert await store.sort_order(box, criteria) == [
            r.uid for r in sort_records(fresh, criteria)
        ]
    for criteria in CRITERIA:
        expected = [r.uid for r in sort_records(fresh, criteria)]
        assert await store.sort_order(box, criteria) == expected
        keys = await store.sort_keys(box, criteria)
        assert sorted(uids, key=keys.__getitem__) == expected
    got = await store.thread_roots(box, "REFERENCES", None, uids)
    assert _shape(got) == _shape(references(fresh))
    got = await store.thread_roots(box, "ORDEREDSUBJECT", None, None)
    assert _shape(got) == _shape(ordered_subject(fresh))
    if len(uids) > 2:  # a searched subset (every other message)
        some = uids[::2]
        got = await store.thread_roots(box, "REFERENCES", None, some)
        assert _shape(got) == _shape(references([r for r in fresh if r.uid in set(some)]))
    _check_counts(store._sort_states[box])
    assert store._sort_states[box].without_references == 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_STEP, min_size=1, max_size=8), rows_only=st.integers(0, 8))
async def test_incremental_equals_full(
    store: Any, env: Env, steps: list[Any], rows_only: int
) -> None:
    """Before step ``rows_only`` only ARRIVAL and SIZE are asked for (no content keys
    read); from then on every order and thread, the first asking for keys reading them
    for every message held."""
    users = getattr(store, "_prop_user", None)
    if users is None:
        users = store._prop_user = await store.create_user("prop", "pw")
        store._prop_boxes = 0
    store._prop_boxes += 1
    name = f"box{store._prop_boxes}"
    box = (await store.create_mailbox(users.id, name, ORIGIN)).id
    when = dt.datetime(2023, 1, 5, tzinfo=dt.UTC)
    await (_check_rows if rows_only else _check)(store, box)  # a state is made and kept
    for step, (kind, arg) in enumerate(steps, 1):
        present = [r.uid for r in await store.sort_records(box, ALL, contents=False)]
        if kind == "append":
            msgs = [NewMessage(_raw(*m), (), when + dt.timedelta(minutes=m[4])) for m in arg]
            await store.append(users.id, box, msgs, ORIGIN)
        elif present:
            chosen = sorted({present[i % len(present)] for i in arg})
            flag = "\\Deleted" if kind == "expunge" else "\\Seen"
            await store.store_flags(box, chosen, "+", (flag,), ORIGIN)
            if kind == "expunge":
                await store.expunge(box, ORIGIN)
        await (_check_rows if step < rows_only else _check)(store, box)


def _record(uid: int, day: int, subject: str, sender: str, size: int) -> SortRecord:
    keys = ContentKeys(day, subject, False, sender, "", "", sender, "", None, ())
    return SortRecord(uid, 100 - uid, size, keys)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove"]), st.lists(st.integers(0, 60), max_size=12)),
        max_size=10,
    )
)
def test_state_orders_follow_changes(ops: list[tuple[str, list[int]]]) -> None:
    """The pure state: every kept order equals a fresh sort after adds (bulk and by
    bisection) and removals, REVERSE included."""
    state = MailboxSortState(())
    criteria = [(("DATE", True), ("SUBJECT", False)), (("FROM", False),), (("SIZE", True),)]
    for c in criteria:
        state.order(c)
    for op, values in ops:
        if op == "add":
            start = state.max_uid + 1
            state.add(
                [
                    _record(start + i, v % 4, "ab"[v % 2], "xyz"[v % 3], v % 5)
                    for i, v in enumerate(values)
                ]
            )
        else:
            present = list(state.records)
            if present:
                state.remove({present[v % len(present)] for v in values})
        records = state.all_records()
        for c in criteria:
            assert state.order(c).uids() == [r.uid for r in sort_records(records, c)]
            keys = state.order(c).keys
            assert all(keys[r.uid] == sort_key(r, c) for r in records)
