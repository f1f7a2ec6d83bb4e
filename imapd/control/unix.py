"""Where the control socket lives and how an AF_UNIX path longer than ``sun_path`` is reached."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from imapd.control.wire import MAX_LINE, SOCKET_NAME

# AF_UNIX paths hold 108 octets with the NUL (Linux); longer ones go through /proc/self/fd.
_SUN_PATH_MAX = 107


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


@contextlib.contextmanager
def addressable(path: Path) -> Iterator[tuple[str, int]]:
    """(address to bind or connect, directory fd) for ``path``; a path too long for
    sun_path is reached through ``/proc/self/fd/N/NAME`` (Linux) while the fd is open."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        full = str(path)
        if len(os.fsencode(full)) <= _SUN_PATH_MAX:
            yield full, fd
        else:
            yield f"/proc/self/fd/{fd}/{path.name}", fd
    finally:
        os.close(fd)


def bind(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600 from the start: bound under a temporary
    name, chmod-ed, then renamed over ``path`` (atomic; replaces a stale socket file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with addressable(tmp) as (where, fd):
            sock.bind(where)
            try:
                os.chmod(tmp.name, 0o600, dir_fd=fd)
                os.replace(tmp.name, path.name, src_dir_fd=fd, dst_dir_fd=fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp.name, dir_fd=fd)
                raise
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def open_unix(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with addressable(path) as (where, _):
        return await asyncio.open_unix_connection(where, limit=MAX_LINE)
