"""A big APPEND's parse runs in a parse process (store/parseproc.py), not on the server's
event loop: while it runs, another client's commands are answered; the message is stored
byte for byte; the parse processes end with the server. A real `imapd serve` process, raw
sockets and imaplib."""

from __future__ import annotations

import base64
import random
import socket
import threading
from pathlib import Path

from tests.e2e.process import Proc, wait_for

SIZE = 24 * 1024 * 1024  # over parseproc.IN_PROCESS and the default literal_spool_size


def attachment_message() -> bytes:
    blob = base64.encodebytes(random.Random(3).randbytes(SIZE * 3 // 4))
    return (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: big attachment\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"
        b"--XYZ\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n--XYZ\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + blob.replace(b"\n", b"\r\n")
        + b"--XYZ--\r\n"
    )


class Raw:
    """A logged-in IMAP connection over a raw socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.line()
        assert self.command(b"L LOGIN carol pw").startswith(b"L OK")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, self.buf
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def tagged(self, tag: bytes) -> bytes:
        while not (out := self.line()).startswith(tag + b" "):
            pass
        return out

    def command(self, text: bytes) -> bytes:
        self.sock.sendall(text + b"\r\n")
        return self.tagged(text.split()[0])


def descendants(pid: int) -> set[int]:
    """The processes under ``pid`` (its children, theirs...), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, pp in parents.items() if pp == parent}
        found |= kids
        todo.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_others_are_answered_during_a_big_append(proc: Proc) -> None:
    proc.start()
    assert proc.proc is not None
    before = descendants(proc.proc.pid)
    message = attachment_message()
    writer, other = Raw(proc.port), Raw(proc.port)
    spool = proc.data_dir / "spool"
    replies: list[bytes] = []

    def append() -> None:
        writer.sock.sendall(b"A APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
        replies.append(writer.tagged(b"A"))

    thread = threading.Thread(target=append)
    thread.start()
    try:
        # The literal is all on disk: the APPEND's parse and write are what remain.
        wait_for(
            lambda: (
                any(f.stat().st_size == len(message) for f in spool.glob("*"))
                or not thread.is_alive()
            ),
            "the literal spooled whole",
        )
        answered_before_ok = 0
        while thread.is_alive():
            assert other.command(b"N NOOP").startswith(b"N OK")
            answered_before_ok += thread.is_alive()
    finally:
        thread.join(120)
    assert replies and replies[0].startswith(b"A OK"), replies
    assert answered_before_ok >= 1

    assert other.command(b"S SELECT INBOX").startswith(b"S OK")
    client = proc.client()
    client.select("INBOX", readonly=True)
    typ, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
    assert typ == "OK" and isinstance(data[0], tuple) and data[0][1] == message
    client.logout()

    parse_processes = descendants(proc.proc.pid) - before
    assert parse_processes  # the forkserver and its parse processes
    writer.sock.close()
    other.sock.close()
    assert proc.stop() == 0
    wait_for(lambda: not any(alive(p) for p in parse_processes), "the parse processes to end")
