"""A logged-in raw session with numbered tags (ACL and LIST-MYRIGHTS tests)."""

from __future__ import annotations

import itertools

from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

MSG = "From: a@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n"


class Session:
    """A logged-in raw session: ``run`` returns (untagged responses, tagged status text)."""

    def __init__(self, server: RunningServer, user: str) -> None:
        self.raw = RawClient.connect(server.host, server.port)
        self.raw.login(user, PASSWORD)
        self._tags = (f"t{i}" for i in itertools.count())

    def run(self, text: str) -> tuple[list[str], str]:
        tag = next(self._tags)
        lines = self.raw.command(tag, text)
        return lines[:-1], lines[-1][len(tag) + 1 :]

    def ok(self, text: str) -> list[str]:
        untagged, status = self.run(text)
        assert status.startswith("OK"), (text, status)
        return untagged

    def status(self, text: str) -> str:
        return self.run(text)[1]

    def append(self, mailbox: str, flags: str = "", message: str = MSG) -> str:
        data = message.encode()
        tag = next(self._tags)
        head = f"{tag} APPEND {mailbox} {f'({flags}) ' if flags else ''}{{{len(data)}+}}\r\n"
        self.raw.send(head.encode() + data + b"\r\n")
        return self.raw.until_tagged(tag)[-1][len(tag) + 1 :]
