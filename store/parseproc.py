"""The parse of a big spooled message in a separate process (pure of SQL, IMAP, events).

Owns: the lazily made, per-process pool of parse processes, and what crosses to it and
back. A worker thread is not enough for a big message: parsing it is a handful of long C
calls (``bytes.find``, regexes, ``read_bytes`` of the whole file) over tens of MiB, each
holding the GIL, so the event loop of the server stalls while they run, and the whole
message sits in the server's memory. Here the process reads the spool file itself and
sends back only what the store keeps: `SpooledFacts` (header length, structure JSON,
Message-ID, preview, the MIME tree for the renderer, and a backend's own texts from its
``extra`` function, which must be picklable: a module-level function).

The pool uses the 'forkserver' context (no threads of the server are forked) and belongs to
the process that made it: ``imapd serve --workers N`` forks its workers before any APPEND,
and a worker that finds a pool made by another pid makes its own. `shutdown` ends it (the
SQLite store's close calls it); the next big APPEND makes a new one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from store import mime
from store.mime import BodyPart
from store.mime.preview import preview_text

#: Spooled messages above this many octets parse in a separate process. Below it, a worker
#: thread's stall is short (the longest C call over 1 MiB is ~1 ms) and cheaper than the
#: hop to a process and back (a pickled tree, a process's wake-up).
IN_PROCESS = 1024 * 1024
#: Parse processes per server process: two cores is the target machine (README); more
#: concurrent big APPENDs queue for them.
WORKERS = 2

T = TypeVar("T")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_pid = 0


@dataclass(frozen=True, slots=True)
class SpooledFacts(Generic[T]):
    """What the store keeps of a spooled message, computed in the parse process."""

    size: int
    parsed: BodyPart  # for `store.api.Prerender`, which runs in the server
    structure: str  # mime.structure_to_json(parsed)
    message_id: str | None
    preview: str  # RFC 8970 (store/mime/preview.py)
    extra: T  # the backend's ``extra(data, parsed)``


def facts(path: str, extra: Callable[[bytes, BodyPart], T]) -> SpooledFacts[T]:
    """`SpooledFacts` of the file at ``path``: runs in the parse process (and in tests, to
    compare it with the in-thread parse)."""
    data = Path(path).read_bytes()
    parsed = mime.parse_message(data)
    return SpooledFacts(
        size=len(data),
        parsed=parsed,
        structure=mime.structure_to_json(parsed),
        message_id=mime.message_id(parsed),
        preview=preview_text(data, parsed),
        extra=extra(data, parsed),
    )


def _executor() -> ProcessPoolExecutor:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            # A pool inherited through fork is its parent's: not ours to use or shut down.
            context = multiprocessing.get_context("forkserver")
            _pool = ProcessPoolExecutor(WORKERS, mp_context=context)
            _pool_pid = os.getpid()
        return _pool


async def parse_spooled(path: Path, extra: Callable[[bytes, BodyPart], T]) -> SpooledFacts[T]:
    """`facts` of ``path`` from a parse process, the event loop free meanwhile. A pool whose
    process died (killed, out of memory) raises BrokenProcessPool once and is replaced."""
    pool = _executor()
    try:
        # Submitted from a thread: the first submit starts the processes, and waits for the
        # forkserver to be up (its imports take a few hundred ms) - not on the event loop.
        future = await asyncio.to_thread(pool.submit, facts, str(path), extra)
        return await asyncio.wrap_future(future)
    except BrokenProcessPool:
        _drop(pool)
        raise


def _drop(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """End this process's parse processes, if any (waits for parses in flight)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None and _pool_pid == os.getpid():  # not a pool inherited through fork
        pool.shutdown(wait=True)
