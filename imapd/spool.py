"""Big literals on disk: one spool file per literal of at least ``literal_spool_size`` octets.

Owns: ``DATA_DIR/spool`` (mode 0700, emptied at start of files a crash left behind) and
`Spool`, one literal being received: a file created with mode 0600 (``mkstemp``), written
as the core hands out `LiteralChunk` events, read back by the store in chunks, and removed
by the session once the command that carried it is over, whatever became of it (answered,
refused, or the connection lost mid-upload). A stalled upload therefore costs disk, not
memory, and only until ``literal_timeout``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("imapd.spool")

SPOOL_DIR = "spool"
_PREFIX = "literal-"


def prepare_dir(data_dir: Path) -> Path:
    """``DATA_DIR/spool``, private, without leftovers of an earlier run (none is in use:
    spool files live only as long as the connection that wrote them)."""
    path = data_dir / SPOOL_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    for leftover in path.glob(_PREFIX + "*"):
        leftover.unlink(missing_ok=True)
        log.info("removed leftover spool file %s", leftover.name)
    return path


class Spool:
    """One literal of ``size`` octets on its way to a file in ``directory``."""

    def __init__(self, directory: Path, size: int) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_PREFIX, dir=directory)  # mode 0600
        self.path = Path(name)
        self.size = size
        self.written = 0
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    @property
    def complete(self) -> bool:
        return self.written == self.size and self._file is None

    def write(self, data: bytes) -> None:
        """Append ``data``; the file is closed (flushed) with the literal's last octet.
        Raises OSError (a full disk): the caller answers the command, not this."""
        assert self._file is not None, "write after the literal's end"
        self._file.write(data)
        self.written += len(data)
        if self.written >= self.size:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        file, self._file = self._file, None
        try:
            if file is not None:
                file.close()  # flushes: fails again on the disk that failed a write
        except OSError as exc:
            log.warning("spool file %s: %s", self.path.name, exc)
        finally:
            self.path.unlink(missing_ok=True)


def create_file(directory: Path) -> tuple[Path, BinaryIO]:
    """A new private file in the spool directory (mode 0600), named as literals' are so
    `prepare_dir` removes it after a crash: for octets a command builds itself (CATENATE,
    imapd/commands/catenate.py) and for big LMTP messages (imapd/lmtp/sink.py). The caller
    closes and removes it."""
    directory.mkdir(mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_PREFIX, dir=directory)
    return Path(name), os.fdopen(fd, "wb")
