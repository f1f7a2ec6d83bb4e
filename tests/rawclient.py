"""A raw-socket IMAP client for protocol-level tests: exact bytes out, logical responses in.

A *logical response* is one server line with any literals it announces spliced in, so
``* 1 FETCH (BODY[] {5}\\r\\nhello)`` comes back as one str (CRLF inside literals kept as is).
"""

from __future__ import annotations

import re
import socket
import time

_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r\n$")


class RawClient:
    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""

    @classmethod
    def connect(cls, host: str, port: int, timeout: float = 10.0) -> RawClient:
        return cls(socket.create_connection((host, port), timeout=timeout), timeout)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, text: str) -> None:
        self.send(text.encode() + b"\r\n")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response_bytes(self) -> bytes:
        """One logical response, CRLF stripped."""
        out = self._read_line()
        while m := _LITERAL_AT_END.search(out):
            out += self._read_exact(int(m.group(1)))
            out += self._read_line()
        return out[:-2]

    def response(self) -> str:
        return self.response_bytes().decode("utf-8", "replace")

    def until_tagged(self, tag: str) -> list[str]:
        """Every response up to and including the tagged one for ``tag``."""
        out = []
        while True:
            resp = self.response()
            out.append(resp)
            if resp.startswith(tag + " "):
                return out

    def command(self, tag: str, text: str) -> list[str]:
        self.line(f"{tag} {text}")
        return self.until_tagged(tag)

    def login(self, user: str, password: str) -> None:
        greeting = self.response()
        assert greeting.startswith("* OK"), greeting
        tagged = self.command("L0", f"LOGIN {user} {password}")[-1]
        assert tagged.startswith("L0 OK"), tagged

    def ok(self, tag: str, text: str) -> list[str]:
        """``command`` that must end in a tagged OK."""
        out = self.command(tag, text)
        assert out[-1].startswith(f"{tag} OK"), out
        return out

    def append(self, tag: str, mailbox: str, message: str) -> None:
        """APPEND ``message`` with a LITERAL+ literal; the tagged reply must be OK."""
        self.send(f"{tag} APPEND {mailbox} {{{len(message.encode())}+}}\r\n{message}\r\n")
        resp = self.until_tagged(tag)
        assert resp[-1].startswith(f"{tag} OK"), resp

    def take_available(self) -> None:
        """Add to ``buf`` what the server already sent, without waiting (on loopback an
        answer is in the receive buffer once the server's write returned)."""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        finally:
            self.sock.settimeout(timeout)

    def quiet(self, seconds: float = 0.3) -> bytes:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        self.sock.settimeout(0.05)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                self.buf += chunk
        finally:
            self.sock.settimeout(10.0)
        out, self.buf = self.buf, b""
        return out

    def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within ``timeout`` (data drained)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.sock.close()
