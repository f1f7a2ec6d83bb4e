"""Helpers feeding bytes to a ServerConnection whole, byte by byte and split."""

from __future__ import annotations

import random
from collections.abc import Iterable

from imapd.protocol.connection import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    Fatal,
    Limits,
    ServerConnection,
)
from imapd.protocol.state import Authenticated, NotAuthenticated, Selected, State


def connection(state: State | None = None, limits: Limits | None = None) -> ServerConnection:
    conn = ServerConnection(limits or Limits())
    match state:
        case None | NotAuthenticated():
            pass
        case Authenticated(user):
            conn.set_state(Authenticated(user))
        case Selected(user, _, _):
            conn.set_state(Authenticated(user))
            conn.set_state(state)
        case _:
            conn.set_state(state)
    return conn


def drain(conn: ServerConnection) -> list[Event]:
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, Fatal | ConnectionClosed):
            break
    return out


def feed(conn: ServerConnection, pieces: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        if not piece:
            continue
        conn.receive_data(piece)
        events.extend(drain(conn))
    return events


def three_ways(data: bytes, seed: str) -> list[tuple[str, list[bytes]]]:
    """Whole, byte by byte, and split once at a random (seeded) point."""
    k = random.Random(seed).randint(0, len(data))
    return [
        ("whole", [data]),
        ("bytewise", [data[i : i + 1] for i in range(len(data))]),
        (f"split@{k}", [data[:k], data[k:]]),
    ]
