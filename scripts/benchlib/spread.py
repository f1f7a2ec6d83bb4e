"""Which server process holds which client connection: the ``notify`` section's per-worker
listener counts under ``--workers N`` (SO_REUSEPORT spreads connections by address hash,
docs/workers.md), and each worker's own CPU time.

Read from /proc alone (Linux): the TCP sockets of the server's port in state ESTABLISHED
(/proc/net/tcp, tcp6) are matched by inode with the socket descriptors each process of the
server's tree holds (/proc/PID/fd). A connection a process accepted is held by it alone (the
supervisor holds only the listening sockets). Elsewhere (no /proc) the answer is empty.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

_ESTABLISHED = "01"


@dataclass(slots=True)
class Spread:
    """The connections on the server's port per process (pid -> remote ports)."""

    ports: dict[int, set[int]] = field(default_factory=dict)

    def count(self, pid: int, exclude: frozenset[int] = frozenset()) -> int:
        return len(self.ports.get(pid, set()) - exclude)

    def holder(self, remote_port: int) -> int | None:
        """The pid holding the connection from ``remote_port`` (None: not found)."""
        for pid, ports in self.ports.items():
            if remote_port in ports:
                return pid
        return None


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, ``root`` first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo += sorted(children.get(pid, []))
    return out


def _established(port: int) -> dict[int, int]:
    """inode -> remote port of the ESTABLISHED TCP sockets whose local port is ``port``."""
    out: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            lines = Path(table).read_text().splitlines()[1:]
            for line in lines:
                cols = line.split()
                if len(cols) < 10 or cols[3] != _ESTABLISHED:
                    continue
                local, remote = cols[1], cols[2]
                if int(local.rsplit(":", 1)[1], 16) == port:
                    out[int(cols[9])] = int(remote.rsplit(":", 1)[1], 16)
    return out


def spread(root: int, port: int) -> Spread:
    """Each process of ``root``'s tree and the client connections to ``port`` it holds."""
    sockets = _established(port)
    result = Spread()
    for pid in tree_pids(root):
        held: set[int] = set()
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inode = int(target[8:-1])
                        if inode in sockets:
                            held.add(sockets[inode])
        result.ports[pid] = held
    return result


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of the one process ``pid`` (0.0 when gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
