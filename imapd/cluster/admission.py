"""Connection limits counted across the workers of one supervisor (`imapd serve --workers N`).

Owns: `SharedCounts`, the counts `Admission` (imapd/limits.py) checks its limits against
when the process is one of several workers: ``max_connections`` for the whole server,
``max_connections_per_ip`` and ``max_connections_per_user_ip`` over every worker's
connections, as one server would. Each worker still keeps its own descriptor budget.

How: the supervisor makes one shared memory file (``memfd_create``) before it forks, so
every worker (restarted ones included) maps the same pages. It holds a hash table of
``(key hash, worker, count)`` entries, open addressing with linear probing and
backward-shift deletion (no tombstones): the count of a key is the sum over its entries,
one per worker that holds connections of it. Every read-check-add is done under a POSIX
record lock on that file (``lockf``): held for microseconds, and released by the kernel
when a worker dies holding it (kill -9), so a dead worker can never wedge the others. A
worker's entries are removed when it (re)starts and when the supervisor reaps it, so the
connections of a worker that died stop counting at once; they closed with it.

Keys are 64-bit BLAKE2b hashes of the key text: two different addresses sharing a hash
would count together (a chance of about n²/2⁶⁵ for n keys: none in practice). A full table
(more live keys than the capacity made for ``max_connections`` allows) refuses, as a limit.
Not used with one process: `Admission` keeps its own counters then.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator

__all__ = ["SharedCounts"]

_ENTRY = struct.Struct("<QII")  # key hash (0: empty), worker index, count
_HEADER = struct.Struct("<Q")  # live entries
_MAX_CAPACITY = 1 << 21  # 32 MiB of (sparse) shared memory at most


def _capacity(connections: int) -> int:
    """Entries for ``connections`` connections: each holds at most two keys (its address,
    its user and address) besides the total; kept at most a quarter full."""
    want = 4 * (2 * max(connections, 256) + 64)
    capacity = 1
    while capacity < want:
        capacity <<= 1
    return min(capacity, _MAX_CAPACITY)


def _hash(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class SharedCounts:
    """Counts shared by the workers (see the module). Made once by the supervisor
    (`create`); each worker calls `attach` with its index. `count` and `add` are called
    inside `locked`, so a check and the addition it allows are one step for all workers."""

    def __init__(self, fd: int, capacity: int) -> None:
        self._fd = fd
        self._capacity = capacity
        self._mask = capacity - 1
        self._map = mmap.mmap(fd, _HEADER.size + capacity * _ENTRY.size)
        self.worker = 0

    @classmethod
    def create(cls, connections: int) -> SharedCounts | None:
        """The table for about ``connections`` connections in all; None where there is no
        ``memfd_create`` (not Linux): the limits are then each worker's own."""
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is None:
            return None
        capacity = _capacity(connections)
        fd = memfd_create("imapd-admission", 0)  # not MFD_CLOEXEC: nothing execs
        os.ftruncate(fd, _HEADER.size + capacity * _ENTRY.size)
        return cls(fd, capacity)

    def attach(self, worker: int) -> None:
        """In worker ``worker`` (1..N): count as it, its predecessor's entries gone."""
        self.worker = worker
        self.forget_worker(worker)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    # --- the table (call inside `locked`) ---

    def _at(self, slot: int) -> tuple[int, int, int]:
        return _ENTRY.unpack_from(self._map, _HEADER.size + slot * _ENTRY.size)

    def _put(self, slot: int, h: int, worker: int, count: int) -> None:
        _ENTRY.pack_into(self._map, _HEADER.size + slot * _ENTRY.size, h, worker, count)

    def _live(self) -> int:
        return int(_HEADER.unpack_from(self._map, 0)[0])

    def _set_live(self, live: int) -> None:
        _HEADER.pack_into(self._map, 0, live)

    def count(self, key: str) -> int:
        """Connections of ``key`` over all workers."""
        h = _hash(key)
        slot = h & self._mask
        total = 0
        for _ in range(self._capacity):
            eh, _worker, count = self._at(slot)
            if eh == 0:
                break
            if eh == h:
                total += count
            slot = (slot + 1) & self._mask
        return total

    def add(self, key: str, delta: int) -> bool:
        """Add ``delta`` to this worker's count of ``key``; False (nothing changed) when a
        new key finds the table full."""
        h = _hash(key)
        slot = h & self._mask
        for _ in range(self._capacity):
            eh, worker, count = self._at(slot)
            if eh == 0:
                break
            if eh == h and worker == self.worker:
                if count + delta > 0:
                    self._put(slot, h, worker, count + delta)
                else:
                    self._delete(slot)
                return True
            slot = (slot + 1) & self._mask
        if delta <= 0:
            return True  # nothing of this worker's to take from (already forgotten)
        live = self._live()
        if live * 2 >= self._capacity:
            return False
        self._put(slot, h, self.worker, delta)
        self._set_live(live + 1)
        return True

    def _delete(self, slot: int) -> None:
        """Backward-shift deletion: the entries after ``slot`` in its run that may move
        back do, so every key's entries stay reachable from its home slot."""
        mask = self._mask
        hole = slot
        probe = slot
        while True:
            probe = (probe + 1) & mask
            h, worker, count = self._at(probe)
            if h == 0:
                break
            home = h & mask
            # the entry stays when its home lies cyclically in (hole, probe]
            if (hole < probe and hole < home <= probe) or (
                hole > probe and (home > hole or home <= probe)
            ):
                continue
            self._put(hole, h, worker, count)
            hole = probe
        self._put(hole, 0, 0, 0)
        self._set_live(self._live() - 1)

    def forget_worker(self, worker: int) -> int:
        """Remove every entry of ``worker`` (it died, or is starting again); returns how
        many there were."""
        with self.locked():
            kept: list[tuple[int, int, int]] = []
            dropped = 0
            for slot in range(self._capacity):
                h, who, count = self._at(slot)
                if h == 0:
                    continue
                if who == worker:
                    dropped += 1
                else:
                    kept.append((h, who, count))
            if not dropped and len(kept) == self._live():
                return 0
            self._map[:] = bytes(len(self._map))
            for h, who, count in kept:
                slot = h & self._mask
                while self._at(slot)[0] != 0:
                    slot = (slot + 1) & self._mask
                self._put(slot, h, who, count)
            self._set_live(len(kept))
            return dropped

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
