"""The wake channel of the processes sharing one SQLite store (docs/workers.md).

Owns: ``DATA_DIR/wake/``, a directory of UNIX datagram sockets, one per serving process
(``<instance>.sock``, mode 0600 in a 0700 directory). A process that committed sends one
datagram to every other socket there; the receiver publishes the commits it has not yet
published (store ``publish_foreign``: change_log in commit order), so every process's IDLE
and NOTIFY listeners hear of a commit by any other within a millisecond or two, woken by
the kernel: nothing polls. A datagram's first octet says why:

- ``c``: committed (change_log grew);
- ``k``: a kick request was stored (store/cluster.py), read it now rather than at the next beat;
- ``h``: hello, a process joined: read the directory again (it is not read per commit).

Sending never blocks: a full receive queue (EAGAIN) means the peer has wake-ups pending
already and will read everything committed when it gets to them; a socket nobody is bound
to any more (ECONNREFUSED: a process killed with -9 left it) is removed. The CLI sends too
(`broadcast`): ``imapd user add`` and friends reach every worker, not only the one that
answers the control socket. PostgreSQL stores do not need this: their LISTEN/NOTIFY is the
wake (store/postgres/store.py).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("imapd.cluster")

WAKE_DIR = "wake"
COMMITTED = b"c"
KICK = b"k"
HELLO = b"h"
_SUFFIX = ".sock"
#: Datagrams read per wake-up before the loop turns (they are all alike: one read suffices).
_READ_MAX = 256
#: Errors meaning "nobody there any more" (the socket file of a dead process).
_GONE = frozenset({errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK})


def wake_dir(data_dir: Path) -> Path:
    return data_dir / WAKE_DIR


class _Dir:
    """The wake directory, opened: addresses through ``/proc/self/fd/N/NAME`` when the
    path is too long for sun_path (as imapd/control/unix.py does)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(mode=0o700, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        long = len(os.fsencode(str(path))) + 40 > 107
        self.prefix = f"/proc/self/fd/{self.fd}/" if long else str(path) + "/"

    def address(self, name: str) -> str:
        return self.prefix + name

    def names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.fd) if n.endswith(_SUFFIX)]
        except OSError:
            return []

    def close(self) -> None:
        os.close(self.fd)


def _send(sock: socket.socket, where: _Dir, name: str, kind: bytes) -> bool:
    """One datagram to ``name``; False when nobody is there (its file is then removed)."""
    try:
        sock.sendto(kind, where.address(name))
    except BlockingIOError:
        return True  # its queue is full: it has wake-ups pending already
    except OSError as exc:
        if exc.errno in _GONE:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=where.fd)
            return False
        log.warning("wake %s: %s", name, exc)
    return True


def broadcast(data_dir: Path, kind: bytes = COMMITTED) -> int:
    """Send ``kind`` to every process of the wake directory (the CLI after it committed);
    returns how many were reached. Nothing there, or no directory: 0, never an error."""
    path = wake_dir(data_dir)
    if not path.is_dir():
        return 0
    where = _Dir(path)
    reached = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            for name in where.names():
                reached += _send(sock, where, name, kind)
    finally:
        where.close()
    return reached


class Wake:
    """This process's socket in the wake directory, and its sends to the others.
    ``on_wake(kinds)`` runs in the event loop with the set of kinds received."""

    def __init__(
        self, data_dir: Path, instance: str, on_wake: Callable[[set[bytes]], None]
    ) -> None:
        self.name = instance.replace("/", "_") + _SUFFIX
        self._dir = _Dir(wake_dir(data_dir))
        self._on_wake = on_wake
        self._peers: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._bound = False
        self.sent = 0  # datagrams sent (the bench and tests read it)

    def open(self) -> None:
        """Bind, start reading, and say hello (everyone reads the directory again)."""
        import asyncio

        with contextlib.suppress(OSError):
            os.unlink(self.name, dir_fd=self._dir.fd)
        old = os.umask(0o177)
        try:
            self._sock.bind(self._dir.address(self.name))
        finally:
            os.umask(old)
        self._bound = True
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)
        self.refresh()
        self.send(HELLO)

    def refresh(self) -> None:
        """Read the directory again (at hello, and at each heartbeat as a safety net)."""
        self._peers = [n for n in self._dir.names() if n != self.name]

    def send(self, kind: bytes = COMMITTED) -> None:
        """To every other process; never blocks, never raises."""
        gone = [n for n in self._peers if not _send(self._sock, self._dir, n, kind)]
        self.sent += len(self._peers) - len(gone)
        if gone:
            self._peers = [n for n in self._peers if n not in gone]

    def committed(self) -> None:
        """The store's ``on_commit`` hook."""
        if self._peers:
            self.send(COMMITTED)

    def _readable(self) -> None:
        kinds: set[bytes] = set()
        for _ in range(_READ_MAX):
            try:
                data = self._sock.recv(16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("wake socket: %s", exc)
                break
            kinds.add(data[:1])
        if HELLO in kinds:
            self.refresh()
        if kinds:
            self._on_wake(kinds)

    def close(self) -> None:
        if self._bound:
            import asyncio

            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self._dir.fd)
            self._bound = False
        self._sock.close()
        self._dir.close()
