"""CPU seconds spent by one part of an event loop (a sink's task and its callbacks).

Owns: `CpuMeter`, which adds up ``time.thread_time()`` over the steps of a coroutine it wraps
(`CpuMeter.timed`: each ``send``/``throw`` the event loop makes) and over the blocks it is
entered for (``with meter:``, for callbacks run by other tasks). The loop's thread runs one
step at a time, so the sum is what that part cost the thread, and nothing of the others.
Used by the JetStream sink (notify/jetstream.py) for its health status and the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class CpuMeter:
    def __init__(self) -> None:
        self.seconds = 0.0
        self._entered = 0.0

    def timed(self, coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """``coro`` whose every step is counted (hand it to ``asyncio.create_task``)."""
        return _Timed(coro, self)

    def __enter__(self) -> None:
        self._entered = time.thread_time()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds += time.thread_time() - self._entered


class _Timed(Coroutine[Any, Any, T]):
    __slots__ = ("_coro", "_meter")

    def __init__(self, coro: Coroutine[Any, Any, T], meter: CpuMeter) -> None:
        self._coro = coro
        self._meter = meter

    def send(self, value: Any) -> Any:
        t0 = time.thread_time()
        try:
            return self._coro.send(value)
        finally:
            self._meter.seconds += time.thread_time() - t0

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        t0 = time.thread_time()
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            self._meter.seconds += time.thread_time() - t0

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()
