"""CpuMeter (notify/cpumeter.py): a task's own CPU, not the time it waits nor others' work."""

from __future__ import annotations

import asyncio
import contextlib
import time

from notify.cpumeter import CpuMeter


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_counts_the_steps_of_its_task_only() -> None:
    meter = CpuMeter()

    async def measured() -> str:
        _spin(0.05)
        await asyncio.sleep(0.2)  # waiting costs nothing
        _spin(0.05)
        return "done"

    async def other() -> None:
        await asyncio.sleep(0.05)
        _spin(0.1)  # another task's work, while `measured` sleeps

    task = asyncio.create_task(meter.timed(measured()))
    await other()
    assert await task == "done"
    assert 0.09 <= meter.seconds < 0.15
    with meter:
        _spin(0.02)
    assert 0.11 <= meter.seconds < 0.17


async def test_an_exception_and_a_cancellation_pass_through() -> None:
    meter = CpuMeter()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("x")

    task = asyncio.create_task(meter.timed(fails()))
    try:
        await task
    except ValueError as exc:
        assert str(exc) == "x"
    else:
        raise AssertionError("no exception")
    slow = asyncio.create_task(meter.timed(asyncio.sleep(10)))
    await asyncio.sleep(0)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    assert slow.cancelled()
