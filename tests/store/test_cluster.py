"""Cluster bookkeeping in the store (store/cluster.py, docs/workers.md): leases taken once,
renewed by their holder, taken over after expiry; instances that stop beating removed with
their sessions and leases; the session registry; kick requests in order. Two handles on one
store stand for two processes (SQLite: two connections pairs on one file; PostgreSQL: two
pools on one database)."""

from __future__ import annotations

import asyncio
from typing import Any

from store.cluster import Beat, ClusterSession
from tests.helpers.store import Env

BOTH_BACKENDS = True
TTL = 0.6


def beat(instance: str, *, want: tuple[str, ...] = ("events",), **kw: Any) -> Beat:
    return Beat(instance, 1, "2026-01-01T00:00:00+00:00", TTL, want=want, **kw)


def row(session: str, instance: str, user: str | None = "alice") -> ClusterSession:
    return ClusterSession(
        session, instance, user, "127.0.0.1:1", "imap", "2026-01-01T00:00:00+00:00"
    )


async def test_a_lease_has_one_holder_until_it_expires(env: Env) -> None:
    a, b = await env.open(), await env.open()
    assert (await a.cluster_beat(beat("A"))).held == {"events"}
    assert (await b.cluster_beat(beat("B"))).held == frozenset()  # held by A
    assert (await a.cluster_beat(beat("A"))).held == {"events"}  # renewed
    await asyncio.sleep(TTL / 2)
    assert (await a.cluster_beat(beat("A"))).held == {"events"}  # renewed again in time
    await asyncio.sleep(TTL / 2 + 0.05)
    assert (await b.cluster_beat(beat("B"))).held == frozenset()  # A's renewal still runs
    await asyncio.sleep(TTL + 0.1)  # A stopped beating (kill -9)
    taken = await b.cluster_beat(beat("B"))
    assert taken.held == {"events"}
    assert taken.gone == ("A",)  # and A's row went with it
    assert (await a.cluster_beat(beat("A"))).held == frozenset()  # A is back: B holds it


async def test_racing_beats_give_the_lease_to_exactly_one(env: Env) -> None:
    handles = [await env.open() for _ in range(4)]
    results = await asyncio.gather(*(h.cluster_beat(beat(f"I{i}")) for i, h in enumerate(handles)))
    assert sum(1 for r in results if r.held == {"events"}) == 1


async def test_leaving_releases_at_once(env: Env) -> None:
    a, b = await env.open(), await env.open()
    await a.cluster_beat(beat("A", add_sessions=(row("s1", "A"),)))
    assert [s.session for s in await b.cluster_sessions()] == ["s1"]
    await a.cluster_leave("A")
    assert await b.cluster_sessions() == []
    assert await b.cluster_instances() == []
    assert (await b.cluster_beat(beat("B"))).held == {"events"}


async def test_registry_follows_the_beats_and_dead_instances(env: Env) -> None:
    a, b = await env.open(), await env.open()
    await a.cluster_beat(beat("A", want=(), add_sessions=(row("a1", "A"), row("a2", "A", None))))
    await b.cluster_beat(beat("B", want=(), add_sessions=(row("b1", "B", "bob"),)))
    sessions = await a.cluster_sessions()
    assert {(s.session, s.instance, s.user) for s in sessions} == {
        ("a1", "A", "alice"),
        ("a2", "A", None),
        ("b1", "B", "bob"),
    }
    # a2 logs in, a1 goes: a beat carries both.
    await a.cluster_beat(
        beat("A", want=(), add_sessions=(row("a2", "A", "carol"),), drop_sessions=("a1",))
    )
    assert {(s.session, s.user) for s in await b.cluster_sessions()} == {
        ("a2", "carol"),
        ("b1", "bob"),
    }
    assert sorted(await b.cluster_instances()) == ["A", "B"]
    await asyncio.sleep(TTL + 0.1)  # both stop; B comes back first
    await b.cluster_beat(beat("B", want=()))
    assert {s.session for s in await b.cluster_sessions()} == {"b1"}  # A's are gone
    assert await b.cluster_instances() == ["B"]


async def test_kick_requests_are_read_in_order_after_a_cursor(env: Env) -> None:
    a, b = await env.open(), await env.open()
    head = await b.cluster_kick_head()
    first = await a.request_kick(user="alice")
    second = await a.request_kick(session="s9")
    assert first < second
    kicks = (await b.cluster_beat(beat("B", kicks_after=head))).kicks
    assert [(k.id, k.session, k.user) for k in kicks] == [
        (first, None, "alice"),
        (second, "s9", None),
    ]
    assert [k.id for k in await b.cluster_kicks(first)] == [second]
    assert await b.cluster_kick_head() == second
