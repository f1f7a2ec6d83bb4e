"""The JetStream sink's small parts besides its loop (notify/jetstream.py), no nats-py import:
reading a publish's acknowledgement (`read_ack`), the loop's timers (`Alarm`) and its back-off
(`Backoff`). Must not import imapd.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DUPLICATE = "duplicate"
NO_RESPONDERS = "no responders"


def read_ack(msg: Any) -> object:
    """A PubAck: the stream seq (int) of a stored message, `DUPLICATE`, `NO_RESPONDERS`
    (status 503: no stream takes the subject), else the error object."""
    data: bytes = msg.data
    headers = msg.headers
    if not data and headers and headers.get("Status") == "503":
        return NO_RESPONDERS
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return {"description": f"unreadable ack {data[:80]!r}"}
    error = answer.get("error")
    if error is not None:
        return error if isinstance(error, dict) else {"description": str(error)}
    if answer.get("duplicate"):
        return DUPLICATE
    seq = answer.get("seq")
    return seq if isinstance(seq, int) else {"description": f"ack without seq {data[:80]!r}"}


@dataclass
class Backoff:
    initial: float
    maximum: float
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial


class Alarm:
    """One timer calling ``ring`` at the earliest time asked of it that has not passed.
    `at` keeps an armed timer that rings no later than asked (so a stream of rounds arms
    one timer per ack timeout, not one per round), else arms one; the caller tolerates an
    early ring (it looks at the time again and asks anew)."""

    __slots__ = ("_handle", "_ring")

    def __init__(self, ring: Callable[[], None]) -> None:
        self._ring = ring
        self._handle: asyncio.TimerHandle | None = None

    def at(self, when: float) -> None:
        handle = self._handle
        if handle is not None:
            if handle.when() <= when:
                return
            handle.cancel()
        self._handle = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._ring()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
