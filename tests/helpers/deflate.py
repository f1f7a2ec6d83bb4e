"""COMPRESS=DEFLATE (RFC 4978) on the client side, with zlib: imapclient and imaplib have none."""

from __future__ import annotations

import re
import zlib

from tests.rawclient import RawClient

_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class DeflateClient:
    """A raw client that deflates what it sends and inflates what it reads (wbits -15)."""

    def __init__(self, raw: RawClient) -> None:
        self.sock = raw.sock
        assert raw.buf == b"", "nothing may follow the COMPRESS OK uncompressed"
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.buf = b""
        self.wire_in = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.wire_in += len(chunk)
        self.buf += self.inflate.decompress(chunk)

    def response(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        while m := _LITERAL.search(line):
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            line += self.buf[:size]
            self.buf = self.buf[size:]
            while b"\r\n" not in self.buf:
                self._fill()
            i = self.buf.index(b"\r\n") + 2
            line, self.buf = line + self.buf[:i], self.buf[i:]
        return line[:-2]

    def command(self, tag: str, text: bytes) -> list[bytes]:
        self.send(tag.encode() + b" " + text + b"\r\n")
        out: list[bytes] = []
        while not (out and out[-1].startswith(tag.encode() + b" ")):
            out.append(self.response())
        return out
