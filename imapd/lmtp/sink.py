"""Where an LMTP message goes while its DATA arrives: memory while small, a spool file past
``literal_spool_size`` octets (the threshold IMAP literals use, imapd/spool.py).

Owns: one message's octets between `MessageStart` and the end of DATA, the Return-Path line
first (RFC 5321 §4.4), and the spool file's lifetime: created in ``DATA_DIR/spool`` with the
literals' prefix (so `spool.prepare_dir` removes a crash's leftovers at start), removed by
`discard` whatever became of the message. A write that fails (a full disk) is kept, not
raised: the rest of DATA is read and dropped, and the delivery is refused as temporary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

from imapd import spool

log = logging.getLogger("imapd.lmtp")


class MessageSink:
    """The octets of one message, in memory up to ``spool_size``, then in a file."""

    def __init__(self, head: bytes, spool_dir: Path, spool_size: int) -> None:
        self._spool_dir = spool_dir
        self._spool_size = spool_size
        self._buf: bytearray | None = bytearray(head)
        self._file: BinaryIO | None = None
        self.path: Path | None = None
        self.error: OSError | None = None
        self.size = len(head)

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        self.size += len(data)
        try:
            if self._buf is not None:
                self._buf += data
                if len(self._buf) >= self._spool_size:
                    self.path, self._file = spool.create_file(self._spool_dir)
                    self._file.write(self._buf)
                    self._buf = None
            elif self._file is not None:
                self._file.write(data)
        except OSError as exc:
            log.warning("lmtp: cannot spool a message: %s", exc)
            self.error = exc
            self._buf = None
            self.discard()

    def content(self) -> bytes | Path:
        """What `NewMessage.content` takes: the octets, or the (flushed, closed) file.
        Raises OSError (the flush failing on a full disk)."""
        if self.error is not None:
            raise self.error
        if self._buf is not None:
            return bytes(self._buf)
        assert self.path is not None
        file, self._file = self._file, None
        if file is not None:
            file.close()
        return self.path

    def discard(self) -> None:
        """Free the octets and remove the file, if any (idempotent)."""
        self._buf = None
        file, self._file = self._file, None
        path, self.path = self.path, None
        try:
            if file is not None:
                file.close()
        except OSError as exc:
            log.warning("lmtp: spool file %s: %s", path.name if path else "?", exc)
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
